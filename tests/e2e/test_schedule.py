"""Scheduled sends through Mi Push's SDK: fire on time, survive restarts, deleted never fire."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from xmpush.APISender import APISender
from xmpush.APITools import APITools

from tests.e2e.helpers import Phone, point_xmpush_at, running_node
from tests.e2e.test_mipush_sdk import BASE, _post, call, code_of, message
from tests.e2e.test_trace import get_code
from tidings.core.models import NewApp
from tidings.node import Node


def later(ms: int) -> int:
    return int(time.time() * 1000) + ms


def scheduled(at: int, title: str = "later", **extra: str) -> dict[str, Any]:
    return {**message(title, **extra), "time_to_send": at}


async def test_scheduled_send_fires_within_a_second(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app, topics=["news"]).start()
    sender, tools = APISender(app.app_secret), APITools(app.app_secret)
    at = later(1500)
    r = await call(sender.send, scheduled(at), phone.reg_id, retry_times=1)
    rt = await call(sender.broadcast, scheduled(at, "topic"), "news", retry_times=1)
    job_id = r.data.id
    assert (await call(tools.check_schedule_job_exist, job_id)).data.exist is True
    assert phone.messages == []
    assert await call(get_code, app.app_secret, "/v1/trace/message/status", msg_id=job_id) == 65028
    await phone.wait_for(2, timeout=5)
    arrived = int(time.time() * 1000)
    assert at <= arrived <= at + 1000 + 500  # within 1 s (plus delivery)
    assert sorted(m.id for m in phone.messages) == sorted([job_id, rt.data.id])
    assert await call(code_of, app.app_secret, "/v2/schedule_job/exist", job_id=job_id) == 65028
    t = (await call(tools.query_message_status, job_id, retry_times=1)).data.data
    assert t.resolved == 1
    await phone.stop()


async def test_deleted_jobs_never_fire(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    sender, tools = APISender(app.app_secret), APITools(app.app_secret)
    at = later(1200)
    a = await call(sender.send, scheduled(at, "a"), phone.reg_id, retry_times=1)
    await call(sender.send, scheduled(at, "b", jobkey="batch7"), phone.reg_id, retry_times=1)
    await call(sender.send, scheduled(at, "c", jobkey="batch7"), phone.reg_id, retry_times=1)
    topic = await call(sender.broadcast_all, scheduled(at, "d"), retry_times=1)
    keep = await call(sender.send, scheduled(at, "kept"), phone.reg_id, retry_times=1)
    assert (await call(tools.delete_schedule_job, a.data.id)).code == 0
    assert (await call(tools.delete_schedule_job_key, "batch7")).data.deleted == 2
    assert (await call(tools.delete_topic, topic.data.id, retry_times=1)).code == 0
    await phone.wait_for(1, timeout=5)
    await asyncio.sleep(1.0)
    assert [m.id for m in phone.messages] == [keep.data.id]
    assert await call(code_of, app.app_secret, "/v2/schedule_job/delete", job_id=a.data.id) == (
        65028
    )
    await phone.stop()


async def test_jobs_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "phone.json"
    async with running_node(tmp_path / "data") as node:
        point_xmpush_at(node)
        app = await node.create_app("Demo", "com.example.demo")
        phone = await Phone(node, app, state=state).start()
        await phone.stop()
        at = later(1500)
        r = await call(APISender(app.app_secret).send, scheduled(at), phone.reg_id, retry_times=1)
    async with running_node(tmp_path / "data") as node:  # the job is a row: it is still there
        point_xmpush_at(node)
        assert await node.store.job_exists(app.app.app_id, r.data.id)
        again = await Phone(node, app, state=state).start()
        assert again.reg_id == phone.reg_id
        [got] = await again.wait_for(1, timeout=5)
        assert got.id == r.data.id and int(time.time() * 1000) >= at
        assert not await node.store.job_exists(app.app.app_id, r.data.id)
        await again.stop()


async def test_schedule_error_codes(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    s, reg = app.app_secret, phone.reg_id
    eight_days = later(8 * 86_400_000)
    cases: list[tuple[int, str, dict[str, Any]]] = [
        (10017, "/v3/message/regid", {**BASE, "registration_id": reg, "time_to_send": eight_days}),
        (10017, "/v2/message/all", {**BASE, "time_to_send": eight_days}),
        (10017, "/v3/message/regid", {**BASE, "registration_id": reg, "time_to_send": "soon"}),
        (10016, "/v2/schedule_job/exist", {}),
        (65028, "/v2/schedule_job/exist", {"job_id": "nope"}),
        (65028, "/v2/schedule_job/delete", {"job_id": "nope"}),
        (10016, "/v3/schedule_job/delete", {}),
        (65028, "/v3/schedule_job/delete", {"jobkey": "nokey"}),
        (10016, "/v2/message/delete", {}),
        (20315, "/v2/message/delete", {"id": "nope"}),
    ]
    for expected, path, params in cases:
        got = await call(code_of, s, path, **params)
        assert got == expected, (path, params, got)
    r = await call(APISender(s).send, message(), reg, retry_times=1)
    assert await call(code_of, s, "/v2/message/delete", id=r.data.id) == 20315  # not a broadcast
    other = await node.create_app("Other", "com.example.other")
    job = await call(APISender(s).send, scheduled(later(60_000)), reg, retry_times=1)
    assert await call(code_of, other.app_secret, "/v2/schedule_job/delete", job_id=job.data.id) == (
        65028
    )
    assert await node.store.job_exists(app.app.app_id, job.data.id)
    await phone.stop()


async def test_multi_messages_with_time_to_send(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    entries = [
        {"target": phone.reg_id, "message": {"title": "now", "description": "d"}},
        {
            "target": phone.reg_id,
            "message": {"title": "own", "description": "d", "time_to_send": later(1200)},
        },
        {"target": "ghost", "message": {"title": "ghost", "description": "d"}},
    ]
    r = await call(
        _post,
        app.app_secret,
        "/v2/multi_messages/regids",
        messages=json.dumps(entries),
        restricted_package_name="com.example.demo",
    )
    assert r.code == 0 and len(r.data.ids) == 2 and r.data.bad_regids == "ghost"
    await phone.wait_for(1)
    assert [m.title for m in phone.messages] == ["now"]
    assert await node.store.job_exists(app.app.app_id, r.data.ids[1])
    await phone.wait_for(2, timeout=5)
    assert [m.title for m in phone.messages] == ["now", "own"]
    await phone.stop()


async def test_stop_by_id_and_jobkey_remove_undelivered(
    tmp_path: Path, node: Node, app: NewApp
) -> None:
    state = tmp_path / "offline.json"
    phone = await Phone(node, app, state=state, topics=["news"]).start()
    await phone.stop()  # offline: everything below waits in its inbox or the log
    sender, s = APISender(app.app_secret), app.app_secret
    a = await call(sender.send, message("a"), phone.reg_id, retry_times=1)
    b = await call(sender.send, message("b", jobkey="promo"), phone.reg_id, retry_times=1)
    c = await call(sender.broadcast, message("c", jobkey="promo"), "news", retry_times=1)
    d = await call(sender.send, message("d"), phone.reg_id, retry_times=1)
    r = await call(_post, s, "/v1/message/switch/stop_by_id", msg_ids=a.data.id)
    assert r.data.stopped == [a.data.id]
    r = await call(_post, s, "/v1/message/switch/stop_by_jobkey", job_keys="promo")
    assert sorted(r.data.stopped) == sorted([b.data.id, c.data.id])
    again = await Phone(node, app, state=state).start()
    await again.wait_for(1)
    await asyncio.sleep(0.3)
    assert [m.id for m in again.messages] == [d.data.id]
    for path, params in (
        ("/v1/message/switch/stop_by_id", {"msg_ids": a.data.id}),
        ("/v1/message/switch/stop_by_jobkey", {"job_keys": "promo"}),
    ):
        assert await call(code_of, s, path, **params) == 65028  # nothing left to stop
    assert await call(code_of, s, "/v1/message/switch/stop_by_id") == 10016
    assert await call(code_of, s, "/v1/message/switch/stop_by_jobkey", job_keys="_x") == 10017
    await again.stop()


async def test_a_job_whose_targets_the_filters_leave_out_fires_and_does_not_hold_up_others(
    node: Node, app: NewApp
) -> None:
    phone = await Phone(node, app).start()  # reports no model: extra.model leaves it out
    sender, tools = APISender(app.app_secret), APITools(app.app_secret)
    at = later(1200)
    left_out = await call(
        sender.send, scheduled(at, "pixel", model="Pixel"), phone.reg_id, retry_times=1
    )
    after = await call(sender.send, scheduled(at + 100, "after"), phone.reg_id, retry_times=1)
    [got] = await phone.wait_for(1, timeout=5)
    assert got.id == after.data.id
    assert not await node.store.job_exists(app.app.app_id, left_out.data.id)
    t = (await call(tools.query_message_status, left_out.data.id, retry_times=1)).data.data
    assert (t.raw_counter, t.resolved, t.device_condition_unmatch) == (1, 0, 1)
    await phone.stop()


async def test_a_job_that_expired_while_the_server_was_down_never_arrives(tmp_path: Path) -> None:
    state = tmp_path / "phone.json"
    async with running_node(tmp_path / "data") as node:
        point_xmpush_at(node)
        app = await node.create_app("Demo", "com.example.demo")
        phone = await Phone(node, app, state=state).start()
        await phone.stop()
        at = later(1500)
        sender = APISender(app.app_secret)
        stale = await call(
            sender.send,
            {**scheduled(at, "stale"), "time_to_live": 500},
            phone.reg_id,
            retry_times=1,
        )
        fresh = await call(sender.send, scheduled(at, "fresh"), phone.reg_id, retry_times=1)
    await asyncio.sleep((at + 500 - later(0)) / 1000 + 0.2)  # down until the first one expired
    async with running_node(tmp_path / "data") as node:
        point_xmpush_at(node)
        again = await Phone(node, app, state=state).start()
        await again.wait_for(1, timeout=5)
        await asyncio.sleep(0.5)
        assert again.ids() == [fresh.data.id]
        assert not await node.store.job_exists(app.app.app_id, stale.data.id)
        tools = APITools(app.app_secret)
        t = (await call(tools.query_message_status, stale.data.id, retry_times=1)).data.data
        assert (t.raw_counter, t.resolved, t.delivered) == (1, 0, 0)
        assert t.create_timestamp == at
        await again.stop()

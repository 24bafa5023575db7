"""Trace and statistics through Mi Push's own SDK (APITools), counted from real device events."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from xmpush.APISender import APISender
from xmpush.APITools import APITools
from xmpush.base.APIError import APIError

from tests.e2e.helpers import Phone
from tests.e2e.test_mipush_sdk import PKG, call, message
from tidings.core.models import NewApp
from tidings.node import Node


async def _until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def get_code(secret: str, path: str, **params: Any) -> int:
    try:
        r = APISender(secret).http_get([path], **params)
    except APIError as err:
        return int(err.error_code)
    return int(r.code)


async def test_trace_counts_resolved_delivered_and_clicks(node: Node, app: NewApp) -> None:
    a = await Phone(node, app, aliases=["alice"]).start()
    b = await Phone(node, app).start()
    sender, tools = APISender(app.app_secret), APITools(app.app_secret)
    r = await call(
        sender.send, message("one", jobkey="job1"), f"{a.reg_id},{b.reg_id},ghost", retry_times=1
    )
    msg_id = r.data.id
    await a.wait_for(1)
    await b.wait_for(1)
    await a.client.click(a.messages[0])
    await a.client.click(a.messages[0])  # a second click by the same device counts once

    async def settled() -> bool:
        t = await call(tools.query_message_status, msg_id, retry_times=1)
        return bool(t.data.data.delivered == 2 and t.data.data.click == 1)

    await _until(settled)
    t = (await call(tools.query_message_status, msg_id, retry_times=1)).data.data
    assert t.id == msg_id and t.msg_type == "Common"
    assert (t.raw_counter, t.resolved, t.invalid_target, t.app_not_register) == (3, 2, 1, 0)
    assert (t.delivered, t.delivery_rate, t.click, t.click_rate) == (2, "100%", 1, "50%")
    assert t.time_to_live == "86400s" and t.bar_closed == 0 and t.device_condition_unmatch == 0
    created = datetime.datetime.strptime(t.create_time, "%Y-%m-%d %H:%M:%S")
    assert abs(created.replace(tzinfo=datetime.UTC).timestamp() * 1000 - t.create_timestamp) < 1000

    r2 = await call(sender.send_to_alias, message("two", jobkey="job1"), "alice", retry_times=1)
    # the device SDK shows only the first message per jobkey; the trace counts both
    job = (await call(tools.query_message_group_status, "job1", retry_times=1)).data.data
    assert job.id == "job1" and job.resolved == 3 and job.raw_counter == 4

    rng = await call(
        tools.query_message_status_time_range, 0, t.create_timestamp + 60_000, retry_times=1
    )
    assert [m.id for m in rng.data.data] == [r2.data.id, msg_id]  # newest first
    for p in (a, b):
        await p.stop()


async def test_broadcast_trace_and_daily_counters(node: Node, app: NewApp) -> None:
    a = await Phone(node, app, topics=["news"]).start()
    b = await Phone(node, app).start()
    sender, tools = APISender(app.app_secret), APITools(app.app_secret)
    r = await call(sender.broadcast, message("news"), "news", retry_times=1)
    await call(sender.broadcast_all, message("all"), retry_times=1)
    await call(sender.send, message("direct"), b.reg_id, retry_times=1)
    await a.wait_for(2)
    await b.wait_for(2)
    await a.client.click(a.messages[0])
    today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")

    async def settled() -> bool:
        s = await call(tools.query_stat_data, today, today, PKG, retry_times=1)
        return bool(s.data.data[0].received == 4 and s.data.data[0].click == 1)

    await _until(settled)
    [day] = (await call(tools.query_stat_data, today, today, PKG, retry_times=1)).data.data
    assert day.date == today
    assert (day.broadcast_recipients, day.single_recipients, day.regid_recipients) == (3, 1, 1)
    assert (day.alias_recipients, day.useraccount_recipients) == (0, 0)
    t = (await call(tools.query_message_status, r.data.id, retry_times=1)).data.data
    assert (t.resolved, t.delivered, t.click) == (1, 1, 1)
    week = await call(tools.query_stat_data, "20200101", "20200107", PKG, retry_times=1)
    assert [d.date for d in week.data.data] == [f"2020010{i}" for i in range(1, 8)]
    assert all(d.received == 0 for d in week.data.data)
    for p in (a, b):
        await p.stop()


async def test_trace_and_stats_error_codes(node: Node, app: NewApp) -> None:
    s = app.app_secret
    cases: list[tuple[int, str, dict[str, Any]]] = [
        (65028, "/v1/trace/message/status", {"msg_id": "tdmNoSuchMessage00000"}),
        (65028, "/v1/trace/message/status", {"job_key": "nojob"}),
        (10016, "/v1/trace/message/status", {}),
        (10016, "/v1/trace/messages/status", {"begin_time": "1"}),
        (10017, "/v1/trace/messages/status", {"begin_time": "x", "end_time": "2"}),
        (10017, "/v1/trace/messages/status", {"begin_time": "5", "end_time": "2"}),
        (10016, "/v1/stats/message/counters", {"start_date": "20240101"}),
        (10017, "/v1/stats/message/counters", {"start_date": "2024-01-01", "end_date": "x"}),
        (10017, "/v1/stats/message/counters", {"start_date": "20240230", "end_date": "20240301"}),
        (10017, "/v1/stats/message/counters", {"start_date": "20240105", "end_date": "20240101"}),
        (10017, "/v1/stats/message/counters", {"start_date": "20200101", "end_date": "20240101"}),
        (
            22022,
            "/v1/stats/message/counters",
            {"start_date": "20240101", "end_date": "20240101", "restricted_package_name": "a.b"},
        ),
    ]
    for expected, path, params in cases:
        got = await call(get_code, s, path, **params)
        assert got == expected, (path, params, got)
    other = await node.create_app("Other", "com.example.other")
    phone = await Phone(node, app).start()
    r = await call(APISender(s).send, message("mine"), phone.reg_id, retry_times=1)
    # another app's message does not exist for it
    got = await call(get_code, other.app_secret, "/v1/trace/message/status", msg_id=r.data.id)
    assert got == 65028
    await phone.stop()

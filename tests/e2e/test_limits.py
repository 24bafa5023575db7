"""Operator limits end to end: per-device daily quotas (200001, receipt 128,
channel_exceed_quota), the per-app request rate (10027), effective dates, receipt 32, the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from xmpush.APISender import APISender
from xmpush.base.APIError import APIError

from tests.e2e.helpers import Phone, point_xmpush_at, running_node
from tests.e2e.test_mipush_sdk import BASE, PKG, _post, call, code_of, message
from tests.e2e.test_receipts import receiving_node
from tidings.cli.main import main as cli
from tidings.clock import ManualClock
from tidings.compliance import consent
from tidings.core.models import NewApp
from tidings.core.quotas import Limits
from tidings.node import Node

DAY = 86_400_000


def refusal(secret: str, path: str, **params: Any) -> tuple[int, str]:
    """(code, reason) of a request through the SDK's request path; (0, "") on success."""
    try:
        _post(secret, path, **params)
    except APIError as err:
        return int(err.error_code), str(err.request)
    return 0, ""


async def delivered(node: Node, reg_id: str, category: str, n: int) -> None:
    """Wait until the device's acks of today reached ``n`` (counted in the ack transaction)."""
    async with asyncio.timeout(10):
        while await node.store.delivered_today(reg_id, category) < n:
            await asyncio.sleep(0.05)


async def until_refused(secret: str, tries: int = 50) -> bool:
    """Requests through the SDK as fast as it goes until one is refused with 10027."""
    for _ in range(tries):
        if await call(code_of, secret, "/v1/channel/list") == 10027:
            return True
    return False


async def test_unlimited_by_default(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d", ack_timeout_s=0.5, limits_cache_s=60.0) as node:
        point_xmpush_at(node)
        app: NewApp = await node.create_app("Demo", PKG)
        phone = await Phone(node, app).start()
        sender = APISender(app.app_secret)
        for i in range(8):  # more than any preset allows, as fast as the SDK goes
            await call(sender.send, message(f"m{i}"), phone.reg_id, retry_times=1)
        await phone.wait_for(8)
        assert (await node.store.limits()).quotas == {} and (await node.store.limits()).qps is None
        assert await node.store.delivered_today(phone.reg_id, "default") == 0  # nothing counted
        assert not await until_refused(app.app_secret, tries=30)  # no request rate limit
        # sends, acks and requests found the (empty) schedule in memory: one read in all
        assert node.control.limits_reads == 1
        await phone.stop()


async def test_per_device_quota_refuses_and_reports(tmp_path: Path) -> None:
    async with receiving_node(tmp_path, ack_timeout_s=0.5) as (rx, node):
        app: NewApp = await node.create_app("Demo", PKG)
        s = app.app_secret
        await node.store.set_limits(Limits.of("mipush"))
        await call(_post, s, "/v1/channel/add", channel_id="news", channel_name="News")
        await call(
            _post, s, "/v1/channel/add", channel_id="im", channel_name="IM", category="private"
        )
        a, b = await Phone(node, app).start(), await Phone(node, app).start()
        sender = APISender(s)
        await call(sender.send, message("first"), a.reg_id, retry_times=1)
        await a.wait_for(1)
        await delivered(node, a.reg_id, "default", 1)

        # every target at its quota (1 per day without a channel): 200001, nothing sent
        send = {**BASE, "registration_id": a.reg_id}
        code, reason = await call(refusal, s, "/v3/message/regid", **send)
        assert (code, reason) == (200001, "exceed quota, quota: 1, have acked: 1")
        ttl0 = {**send, "time_to_live": "0"}  # online-now-or-never sends are held to it too
        assert await call(code_of, s, "/v3/message/regid", **ttl0) == 200001

        # some targets over: accepted for the others, receipt 128 for the ones left out
        extra = {"callback": rx.url, "callback.type": "129", "callback.param": "q"}
        r = await call(
            sender.send, message("second", **extra), f"{a.reg_id},{b.reg_id}", retry_times=1
        )
        await b.wait_for(1)
        await rx.wait(lambda: {e["type"] for e in rx.events()} == {1, 128})
        by_type = {e["type"]: e for e in rx.events()}
        assert by_type[128]["msg_id"] == r.data.id and by_type[128]["targets"] == a.reg_id
        assert by_type[128]["extra"] == {"ack": "1", "quota": "1"}
        assert by_type[128]["param"] == "q"
        assert by_type[1]["targets"] == b.reg_id
        assert len(a.messages) == 1

        # public channel: 5 a day; private: no limit
        news = {**send, "extra.channel_id": "news"}
        for _ in range(5):
            assert await call(code_of, s, "/v3/message/regid", **news) == 0
        await a.wait_for(6)
        await delivered(node, a.reg_id, "public", 5)
        code, reason = await call(refusal, s, "/v3/message/regid", **news)
        assert (code, reason) == (200001, "exceed quota, quota: 5, have acked: 5")
        im = {**send, "extra.channel_id": "im"}
        for _ in range(3):
            assert await call(code_of, s, "/v3/message/regid", **im) == 0
        await a.wait_for(9)

        # multi-message: over-quota entries are counted per channel, not answered 200001
        entries = [
            {"target": a.reg_id, "message": {"title": "d", "description": "d"}},
            {
                "target": a.reg_id,
                "message": {"title": "n", "description": "d", "extra": {"channel_id": "news"}},
            },
            {
                "target": a.reg_id,
                "message": {"title": "p", "description": "d", "extra": {"channel_id": "im"}},
            },
            {"target": b.reg_id, "message": {"title": "b", "description": "d"}},
        ]
        r = await call(
            _post,
            s,
            "/v2/multi_messages/regids",
            messages=json.dumps(entries),
            restricted_package_name=PKG,
        )
        # b's default message of today was "second": over too
        assert r.code == 0 and r.data.channel_exceed_quota == {"default": 2, "news": 1}
        assert len(r.data.ids) == 1
        await a.wait_for(10)
        assert a.messages[-1].title == "p"
        # a multi request with every entry over quota still answers 0
        r = await call(
            _post,
            s,
            "/v2/multi_messages/regids",
            messages=json.dumps(entries[:2]),
            restricted_package_name=PKG,
        )
        assert r.code == 0 and r.data.channel_exceed_quota == {"default": 1, "news": 1}
        assert r.data.ids == []
        await a.stop()
        await b.stop()


async def test_request_rate_limit(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d") as node:
        point_xmpush_at(node)
        app: NewApp = await node.create_app("Demo", PKG)
        other: NewApp = await node.create_app("Other", "com.example.other")
        await node.store.set_limits(Limits.of("unlimited", qps=3))
        headers = {"Authorization": f"key={app.app_secret}"}
        async with httpx.AsyncClient(base_url=node.urls()["api"], timeout=10) as http:
            answers = [
                (await http.get("/v1/channel/list", headers=headers)).json() for _ in range(10)
            ]
            codes = [a["code"] for a in answers]
            assert codes[:3] == [0, 0, 0] and 10027 in codes
            refused = next(a for a in answers if a["code"] == 10027)
            assert refused["result"] == "error"
            assert refused["reason"] == "request rate over 3 per second for this app"
            # per app: another app is not held back by this one
            other_headers = {"Authorization": f"key={other.app_secret}"}
            r = await http.get("/v1/channel/list", headers=other_headers)
            assert r.json()["code"] == 0
            await asyncio.sleep(1.0)  # refilled
            r = await http.get("/v1/channel/list", headers=headers)
            assert r.json()["code"] == 0
        # through the SDK: the code reaches the caller
        assert await until_refused(app.app_secret)


async def test_limits_with_a_future_date_apply_only_from_then(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000_000)
    async with running_node(tmp_path / "d", clock=clock, ack_timeout_s=0.5) as node:
        point_xmpush_at(node)
        app: NewApp = await node.create_app("Demo", PKG)
        await node.store.set_limits(Limits.of("mipush"), clock.now_ms() + DAY)  # announced
        phone = await Phone(node, app).start()
        s = app.app_secret
        send = {**BASE, "registration_id": phone.reg_id}
        for _ in range(3):
            assert await call(code_of, s, "/v3/message/regid", **send) == 0
        await phone.wait_for(3)
        async with asyncio.timeout(5):  # acked before the change: not counted
            while await node.store.pending(phone.reg_id):
                await asyncio.sleep(0.05)
        assert await node.store.delivered_today(phone.reg_id, "default") == 0
        clock.advance(DAY)  # the announced limits are in effect now
        assert (await node.store.limits()).preset == "mipush"
        assert await call(code_of, s, "/v3/message/regid", **send) == 0
        await phone.wait_for(4)
        await delivered(node, phone.reg_id, "default", 1)
        assert await call(code_of, s, "/v3/message/regid", **send) == 200001
        # a scheduled send is accepted, and held to the quota when it fires
        later = {**send, "time_to_send": str(clock.now_ms() + 5_000)}
        r = await call(_post, s, "/v3/message/regid", **later)
        clock.advance(6_000)
        async with asyncio.timeout(5):
            while await node.store.job_exists(app.app.app_id, r.data.id):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert len(phone.messages) == 4
        await phone.stop()


async def test_push_disabled_receipt(tmp_path: Path) -> None:
    async with receiving_node(tmp_path) as (rx, node):
        app = await node.create_app("Gated", "com.example.gated")
        await consent.add_policy(node.store, app.app.app_id, "v1", "https://example.com/p/1")
        phone = await Phone(node, app).start()  # registered, no consent
        msg = message("t", callback=rx.url, **{"callback.type": "32"})
        msg["restricted_package_name"] = "com.example.gated"
        r = await call(APISender(app.app_secret).send, msg, phone.reg_id, retry_times=1)
        await rx.wait(lambda: len(rx.events()) == 1)
        [event] = rx.events()
        assert (event["type"], event["targets"], event["msg_id"]) == (32, phone.reg_id, r.data.id)
        assert phone.messages == []
        await phone.stop()


async def test_cli_schedules_limits_and_a_running_node_follows(tmp_path: Path) -> None:
    data = tmp_path / "d"
    async with running_node(data, ack_timeout_s=0.5) as node:
        point_xmpush_at(node)

        def run(*args: str) -> list[dict[str, Any]]:
            result = CliRunner().invoke(cli, [*args, "--data-dir", str(data)])
            assert result.exit_code == 0, result.output
            return [json.loads(line) for line in result.output.splitlines() if line.strip()]

        [row] = await asyncio.to_thread(run, "limits", "list")
        assert (row["preset"], row["state"]) == ("unlimited", "active")
        [later] = await asyncio.to_thread(
            run, "limits", "set", "--preset", "mipush", "--effective", "2099-01-01"
        )
        assert later["state"] == "announced" and later["effective_at"] == "2099-01-01T00:00:00Z"
        [now] = await asyncio.to_thread(run, "limits", "set", "--preset", "unlimited", "--qps", "2")
        assert now["state"] == "active" and now["qps"] == 2
        rows = await asyncio.to_thread(run, "limits", "list")
        assert [(r["preset"], r["state"]) for r in rows] == [
            ("unlimited", "active"),
            ("mipush", "announced"),
        ]
        bad = CliRunner().invoke(cli, ["limits", "set", "--preset", "x", "--data-dir", str(data)])
        assert bad.exit_code == 2
        bad = CliRunner().invoke(
            cli,
            ["limits", "set", "--preset", "mipush", "--effective", "soon", "--data-dir", str(data)],
        )
        assert bad.exit_code == 2
        await asyncio.sleep(node.settings.limits_cache_s + 0.1)  # the node reads it within 1 s
        app: NewApp = await node.create_app("Demo", PKG)
        assert await until_refused(app.app_secret)


async def test_broadcasts_are_held_to_per_device_quotas(tmp_path: Path) -> None:
    async with receiving_node(tmp_path, ack_timeout_s=0.5) as (rx, node):
        app: NewApp = await node.create_app("Demo", PKG)
        s = app.app_secret
        await node.store.set_limits(Limits.of("mipush"))  # default category: 1 per device a day
        a, b = await Phone(node, app).start(), await Phone(node, app).start()
        sender = APISender(s)
        await call(sender.send, message("first"), a.reg_id, retry_times=1)
        await a.wait_for(1)
        await delivered(node, a.reg_id, "default", 1)
        extra = {"callback": rx.url, "callback.type": "128", "callback.param": "b"}
        r = await call(sender.broadcast_all, message("to all", **extra), retry_times=1)
        await b.wait_for(1)
        await rx.wait(lambda: any(e["type"] == 128 for e in rx.events()))
        [over] = [e for e in rx.events() if e["type"] == 128]
        assert (over["msg_id"], over["targets"]) == (r.data.id, a.reg_id)
        assert over["extra"] == {"ack": "1", "quota": "1"}
        assert [m.title for m in b.messages] == ["to all"]
        await asyncio.sleep(0.3)
        assert [m.title for m in a.messages] == ["first"]  # left out of the broadcast
        assert await node.store.message_counters(r.data.id) == {"over_quota": 1}
        for p in (a, b):
            await p.stop()


async def test_a_scheduled_send_whose_devices_are_all_at_their_quota_reports_them(
    tmp_path: Path,
) -> None:
    async with receiving_node(tmp_path, ack_timeout_s=0.5) as (rx, node):
        app: NewApp = await node.create_app("Demo", PKG)
        await node.store.set_limits(Limits.of("mipush"))  # default category: 1 per device a day
        phone = await Phone(node, app).start()
        sender = APISender(app.app_secret)
        await call(sender.send, message("first"), phone.reg_id, retry_times=1)
        await phone.wait_for(1)
        await delivered(node, phone.reg_id, "default", 1)
        extra = {"callback": rx.url, "callback.type": "144"}
        later = {**message("later", **extra), "time_to_send": node.store.clock.now_ms() + 1200}
        r = await call(sender.send, later, f"{phone.reg_id},ghost", retry_times=1)
        # accepted long before it fires: the device left out is reported, as the unknown one is
        await rx.wait(lambda: {e["type"] for e in rx.events()} == {16, 128})
        by_type = {e["type"]: e for e in rx.events()}
        assert by_type[128]["msg_id"] == r.data.id and by_type[128]["targets"] == phone.reg_id
        assert by_type[128]["extra"] == {"ack": "1", "quota": "1"}
        assert by_type[16]["targets"] == "ghost"
        assert len(phone.messages) == 1
        await phone.stop()

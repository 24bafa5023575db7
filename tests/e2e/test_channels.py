"""Channels through Mi Push's SDK request path (quotas: test_limits.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xmpush.APISender import APISender

from tests.e2e.helpers import Phone, point_xmpush_at, running_node
from tests.e2e.test_mipush_sdk import BASE, PKG, _post, call, code_of, message
from tests.e2e.test_trace import get_code
from tidings.core.models import NewApp


async def test_channels_add_list_discard_and_unlimited_by_default(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d", ack_timeout_s=0.5) as node:
        point_xmpush_at(node)
        app: NewApp = await node.create_app("Demo", PKG)
        s = app.app_secret
        r = await call(_post, s, "/v1/channel/add", channel_id="news", channel_name="News")
        assert r.data.channel_id == "news"
        await call(
            _post, s, "/v1/channel/add", channel_id="im", channel_name="IM", category="private"
        )
        listed = await call(APISender(s).http_get, ["/v1/channel/list"])
        assert [(c["channel_id"], c["category"]) for c in listed.data.list] == [
            ("im", "private"),
            ("news", "public"),
        ]
        phone = await Phone(node, app).start()
        sender = APISender(s)
        # a fresh install has no limits: every category, any number of messages per device
        for i in range(3):
            await call(sender.send, message(f"d{i}"), phone.reg_id, retry_times=1)
            await call(
                sender.send, message(f"n{i}", channel_id="news"), phone.reg_id, retry_times=1
            )
        await phone.wait_for(6)
        assert await node.store.delivered_today(phone.reg_id, "default") == 0  # not counted
        entries = [
            {"target": phone.reg_id, "message": {"title": "d", "description": "d"}},
            {
                "target": phone.reg_id,
                "message": {"title": "p", "description": "d", "extra": {"channel_id": "im"}},
            },
        ]
        r = await call(
            _post,
            s,
            "/v2/multi_messages/regids",
            messages=json.dumps(entries),
            restricted_package_name=PKG,
        )
        assert r.code == 0 and len(r.data.ids) == 2 and "channel_exceed_quota" not in r.data
        await phone.wait_for(8)
        send: dict[str, Any] = {**BASE, "registration_id": phone.reg_id}
        im = {**send, "extra.channel_id": "im"}
        assert await call(code_of, s, "/v1/channel/discard", channel_id="im") == 0
        assert await call(code_of, s, "/v3/message/regid", **im) == 27001
        await phone.stop()


async def test_channel_error_codes(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d") as node:
        point_xmpush_at(node)
        app: NewApp = await node.create_app("Demo", PKG)
        s = app.app_secret
        cases: list[tuple[int, str, dict[str, str]]] = [
            (10016, "/v1/channel/add", {"channel_name": "x"}),
            (10016, "/v1/channel/add", {"channel_id": "x"}),
            (10017, "/v1/channel/add", {"channel_id": "x", "channel_name": "n" * 41}),
            (10017, "/v1/channel/add", {"channel_id": "x", "channel_name": "n", "category": "vip"}),
            (
                10017,
                "/v1/channel/add",
                {"channel_id": "x", "channel_name": "n", "notify_type": "9"},
            ),
            (10016, "/v1/channel/discard", {}),
            (27001, "/v1/channel/discard", {"channel_id": "nope"}),
            (27001, "/v3/message/regid", {**BASE, "registration_id": "r", "extra.channel_id": "x"}),
        ]
        for expected, path, params in cases:
            assert await call(get_code, s, path, **params) == expected, (path, params)

"""Channels and daily quotas through Mi Push's SDK request path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from xmpush.APISender import APISender

from tests.e2e.helpers import Phone, point_xmpush_at, running_node
from tests.e2e.test_mipush_sdk import BASE, PKG, _post, call, code_of, message
from tests.e2e.test_trace import get_code
from tidings.core.models import NewApp


async def test_channels_and_quota_per_category(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d", daily_quota_floor=1, ack_timeout_s=0.5) as node:
        point_xmpush_at(node)
        app: NewApp = await node.store.create_app("Demo", PKG)
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
        phone = await Phone(node, app).start()  # one device: quotas 1 (default), 2 (public)
        sender = APISender(s)

        async def delivered(n: int) -> None:
            await phone.wait_for(n)
            async with asyncio.timeout(5):
                while (await node.store.quota_usage(app.app.app_id, "default"))[0] + (
                    await node.store.quota_usage(app.app.app_id, "public")
                )[0] < n:
                    await asyncio.sleep(0.05)

        await call(sender.send, message("default"), phone.reg_id, retry_times=1)
        await delivered(1)
        send: dict[str, Any] = {**BASE, "registration_id": phone.reg_id}
        assert await call(code_of, s, "/v3/message/regid", **send) == 200001
        news = {**send, "extra.channel_id": "news"}
        assert await call(code_of, s, "/v3/message/regid", **news) == 0
        await delivered(2)
        assert await call(code_of, s, "/v3/message/regid", **news) == 0
        await delivered(3)
        assert await call(code_of, s, "/v3/message/regid", **news) == 200001
        assert await call(
            code_of, s, "/v2/message/all", **{**BASE, "extra.channel_id": "news"}
        ) == (200001)
        im = {**send, "extra.channel_id": "im"}
        for _ in range(3):  # private: no quota
            assert await call(code_of, s, "/v3/message/regid", **im) == 0
        await phone.wait_for(6)
        # multi-message endpoints report over-quota entries per channel instead of 200001
        entries = [
            {"target": phone.reg_id, "message": {"title": "d", "description": "d"}},
            {
                "target": phone.reg_id,
                "message": {"title": "n", "description": "d", "extra": {"channel_id": "news"}},
            },
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
        assert r.code == 0 and r.data.channel_exceed_quota == {"default": 1, "news": 1}
        assert len(r.data.ids) == 1
        await phone.wait_for(7)
        assert phone.messages[-1].title == "p"
        assert await call(code_of, s, "/v1/channel/discard", channel_id="im") == 0
        assert await call(code_of, s, "/v3/message/regid", **im) == 27001
        await phone.stop()


async def test_channel_error_codes(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d") as node:
        point_xmpush_at(node)
        app: NewApp = await node.store.create_app("Demo", PKG)
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

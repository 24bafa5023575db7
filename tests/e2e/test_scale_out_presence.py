"""Shared presence survives Redis losing its data (a restart without persistence)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from xmpush.APITools import APITools

from tests.e2e.helpers import Phone, point_xmpush_at
from tests.e2e.test_mipush_sdk import PKG, call
from tests.e2e.test_scale_out import two_nodes


async def test_a_device_stays_online_for_other_nodes_after_a_redis_restart(
    tmp_path: Path, pg_clean: str
) -> None:
    async with two_nodes(tmp_path, pg_clean) as (a, b, redis):
        app = await a.create_app("Demo", "com.example.demo")
        phone = await Phone(b, app).start()
        point_xmpush_at(a)  # node a answers for node b's device
        tools = APITools(app.app_secret)

        async def online() -> bool:
            answer = await call(tools.query_device_presence, PKG, phone.reg_id, retry_times=1)
            return bool(answer.data.online)

        async with asyncio.timeout(5):
            while not await online():
                await asyncio.sleep(0.02)
        redis.kill()  # it keeps nothing: the presence hash is gone with it
        redis.start()
        await asyncio.wait_for(b.bus.subscribed.wait(), 5)  # type: ignore[attr-defined]
        async with asyncio.timeout(10):  # a heartbeat (every 5 s) finds Redis emptied
            while not await online():
                await asyncio.sleep(0.1)
        await phone.stop()

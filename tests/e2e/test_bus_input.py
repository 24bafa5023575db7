"""Messages on the bus's Redis channel that Tidings did not publish are ignored: the node keeps
hearing the others' events."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from xmpush.APISender import APISender

from tests.e2e.helpers import Phone, point_xmpush_at
from tests.e2e.test_mipush_sdk import call, message
from tests.e2e.test_scale_out import two_nodes

BAD = [
    b"not json",
    b"[]",
    b'{"node": "x"}',
    b'{"node": "x", "type": "inbox", "event": {"reg_ids": 5}}',
    b'{"node": "x", "type": "log", "event": {"app_id": "1", "topics": 7}}',
    b'{"node": "x", "type": "webpush", "event": {"uaid": "u", "message": "text"}}',
    b'{"node": "x", "type": "webpush", "event": {"uaid": "u", "message": {"bad": 1}}}',
    b'{"node": "x", "type": "revoked", "event": {"kind": "nothing"}}',
]


async def test_foreign_messages_on_the_bus_channel_are_ignored(
    tmp_path: Path, pg_clean: str
) -> None:
    async with two_nodes(tmp_path, pg_clean) as (a, b, redis):
        app = await a.create_app("Demo", "com.example.demo")
        phone = await Phone(b, app).start()
        for bad in BAD:
            subprocess.run(
                ["redis-cli", "-p", str(redis.port), "PUBLISH", "tidings:bus", bad],
                check=True,
                capture_output=True,
            )
        await asyncio.sleep(0.2)
        point_xmpush_at(a)  # sent through node a, heard by node b over the bus
        sent = await call(APISender(app.app_secret).send, message("one"), phone.reg_id)
        await phone.wait_for(1, timeout=5)
        assert phone.ids() == [sent.data.id]
        await phone.stop()

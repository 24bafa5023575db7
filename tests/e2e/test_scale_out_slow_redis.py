"""A Redis too slow to take an event (paused, as in a failover or a stalled fork): the node that
could not publish tells the others to rescan once Redis answers, not only with its next send."""

from __future__ import annotations

import subprocess
from pathlib import Path

from xmpush.APISender import APISender

from tests.e2e.helpers import Phone, point_xmpush_at
from tests.e2e.test_mipush_sdk import call, message
from tests.e2e.test_scale_out import two_nodes


async def test_an_event_redis_did_not_take_in_time_reaches_the_other_node(
    tmp_path: Path, pg_clean: str
) -> None:
    async with two_nodes(tmp_path, pg_clean) as (a, b, redis):
        app = await a.create_app("Demo", "com.example.demo")
        phone = await Phone(b, app).start()
        point_xmpush_at(a)  # sent through node a, for the device on node b
        pause = ["redis-cli", "-p", str(redis.port), "CLIENT", "PAUSE", "3000", "WRITE"]
        subprocess.run(pause, check=True, capture_output=True)
        sender = APISender(app.app_secret)
        sent = await call(sender.send, message("one"), phone.reg_id, retry_times=1)
        assert sent.code == 0  # committed; node a's publish timed out
        await phone.wait_for(1, timeout=15)  # node b rescanned on node a's notice
        assert phone.ids() == [sent.data.id]
        await phone.stop()

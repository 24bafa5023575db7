"""Two nodes on one PostgreSQL database and the Redis bus: a device on one node gets what is sent
through the other, also when Redis goes away and comes back (the nodes rescan the store)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psycopg
from xmpush.APISender import APISender

from tests.e2e.helpers import Phone, point_xmpush_at, running_node
from tests.e2e.test_mipush_sdk import call, message
from tests.e2e.test_webpush import Browser
from tests.redis_server import RedisServer


async def test_two_nodes_deliver_each_others_sends_and_survive_a_redis_restart(
    tmp_path: Path, pg_url: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a clean schema for these nodes
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    redis = RedisServer(tmp_path).start()
    common = {"database_url": pg_url, "bus_url": redis.url, "ack_timeout_s": 0.5}
    try:
        async with (
            running_node(tmp_path / "a", **common) as a,
            running_node(tmp_path / "b", **common) as b,
        ):
            for node in (a, b):
                await asyncio.wait_for(node.bus.subscribed.wait(), 5)  # type: ignore[attr-defined]
            app = await a.create_app("Demo", "com.example.demo")
            phone = await Phone(b, app, aliases=["ana"], topics=["news"]).start()
            browser = Browser(b)
            await browser.connect()
            sub = await browser.subscribe()
            token = sub["endpoint"].rsplit("/", 1)[1]
            point_xmpush_at(a)  # the sender talks to node a only
            sender = APISender(app.app_secret)

            r1 = await call(sender.send, message("one"), phone.reg_id, retry_times=1)
            r2 = await call(sender.broadcast, message("two"), "news", retry_times=1)
            await phone.wait_for(2)
            assert phone.ids() == [r1.data.id, r2.data.id]
            async with httpx.AsyncClient() as http:  # Web Push through node a, browser on b
                posted = await http.post(
                    f"http://127.0.0.1:{a.api_port}/wpush/{token}",
                    headers={"TTL": "60", "Content-Encoding": "aes128gcm"},
                    content=b"ciphertext",
                )
            assert posted.status_code == 201
            assert (await browser.recv())["messageType"] == "notification"

            redis.kill()
            r3 = await call(sender.send_to_alias, message("three"), "ana", retry_times=1)
            assert r3.code == 0  # committed: Redis is not the system of record
            r4 = await call(sender.broadcast, message("four"), "news", retry_times=1)
            assert r4.code == 0
            await asyncio.sleep(0.5)
            assert len(phone.messages) == 2  # node b has not heard of them
            redis.start()
            await phone.wait_for(4, timeout=20)  # node b rescanned the store
            assert phone.ids() == [r1.data.id, r2.data.id, r3.data.id, r4.data.id]
            await phone.stop()
            await browser.close()
    finally:
        redis.kill()

"""Two nodes on one PostgreSQL database and the Redis bus: a device on one node gets what is sent
through the other, also when Redis goes away and comes back (the nodes rescan the store)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from xmpush.APISender import APISender
from xmpush.APITools import APITools

from bench.wsclient import Fleet
from tests.e2e.helpers import Phone, point_xmpush_at, running_node
from tests.e2e.test_mipush_sdk import PKG, call, message
from tests.e2e.test_webpush import Browser
from tests.redis_server import RedisServer
from tidings.core.models import NewApp
from tidings.node import Node


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, pg_url: str, **overrides: Any
) -> AsyncIterator[tuple[Node, Node, RedisServer]]:
    """Two nodes on one PostgreSQL database and a Redis server of the test's own, subscribed."""
    redis = RedisServer(tmp_path).start()
    common = {"database_url": pg_url, "bus_url": redis.url, **overrides}
    try:
        async with (
            running_node(tmp_path / "a", **common) as a,
            running_node(tmp_path / "b", **common) as b,
        ):
            for node in (a, b):
                await asyncio.wait_for(node.bus.subscribed.wait(), 5)  # type: ignore[attr-defined]
            yield a, b, redis
    finally:
        redis.kill()


async def test_two_nodes_deliver_each_others_sends_and_survive_a_redis_restart(
    tmp_path: Path, pg_clean: str
) -> None:
    async with two_nodes(tmp_path, pg_clean, ack_timeout_s=0.5) as (a, b, redis):
        app = await a.create_app("Demo", "com.example.demo")
        phone = await Phone(b, app, aliases=["ana"], topics=["news"]).start()
        browser = Browser(b)
        await browser.connect()
        sub = await browser.subscribe()
        token = sub["endpoint"].rsplit("/", 1)[1]
        point_xmpush_at(a)  # the sender talks to node a only
        sender = APISender(app.app_secret)

        tools = APITools(app.app_secret)  # presence: node a answers for node b's device

        async def online() -> bool:
            answer = await call(tools.query_device_presence, PKG, phone.reg_id, retry_times=1)
            return bool(answer.data.online)

        async with asyncio.timeout(5):  # node b writes its devices to Redis every 50 ms
            while not await online():
                await asyncio.sleep(0.02)

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
        first = await browser.recv()
        assert first["messageType"] == "notification"
        await browser.ack(first)

        redis.kill()
        async with httpx.AsyncClient() as http:  # kept while Redis is away
            posted = await http.post(
                f"http://127.0.0.1:{a.api_port}/wpush/{token}",
                headers={"TTL": "60", "Content-Encoding": "aes128gcm"},
                content=b"while redis is away",
            )
        assert posted.status_code == 201
        r3 = await call(sender.send_to_alias, message("three"), "ana", retry_times=1)
        assert r3.code == 0  # committed: Redis is not the system of record
        r4 = await call(sender.broadcast, message("four"), "news", retry_times=1)
        assert r4.code == 0
        await asyncio.sleep(0.5)
        assert len(phone.messages) == 2  # node b has not heard of them
        redis.start()
        await phone.wait_for(4, timeout=20)  # node b rescanned the store
        assert phone.ids()[:2] == [r1.data.id, r2.data.id]
        # the inbox and the app log are read separately: no order between the two promised
        assert sorted(phone.ids()[2:]) == sorted([r3.data.id, r4.data.id])
        late = await browser.recv(timeout=20)  # and the browser's waiting message
        assert late["version"] == posted.headers["Location"].rsplit("/", 1)[1]
        await phone.stop()
        async with asyncio.timeout(5):  # node b's "detached" reaches Redis
            while await online():
                await asyncio.sleep(0.02)
        await browser.close()


def broadcast(sender: APISender, payload: str) -> str:
    """A broadcast to every device of the app, through Mi Push's SDK; its message id."""
    msg = message("all")
    msg["payload"] = payload
    answer = sender.broadcast_all(msg, retry_times=1)
    assert answer.code == 0, answer.description
    return str(answer.data.id)


async def test_redis_killed_and_restarted_mid_broadcast_2_nodes_2000_devices(
    tmp_path: Path, pg_clean: str
) -> None:
    """The delivery contract's figure: every online device gets the message at least once, and
    the sender gets its answer while Redis is down (the broadcast is committed)."""
    fleets: list[Fleet] = []
    try:
        async with two_nodes(tmp_path, pg_clean, ack_timeout_s=2.0) as (a, b, redis):
            app: NewApp = await a.create_app("Demo", "com.example.demo")
            who = {"app_id": app.app.app_id, "app_key": app.app_key, "package": app.app.package}
            for node in (a, b):
                fleet = Fleet("127.0.0.1", node.gateway_port, who)
                await fleet.connect(1000, parallel=100)
                fleets.append(fleet)
            point_xmpush_at(a)
            sender = APISender(app.app_secret)
            for round_, down in (("before", False), ("during", True)):
                for fleet in fleets:
                    fleet.arm(f'{{"round":"{round_}"}}')
                if down:
                    redis.kill()
                msg_id = await asyncio.to_thread(broadcast, sender, f'{{"round":"{round_}"}}')
                if down:
                    await asyncio.sleep(0.3)
                    redis.start()
                for fleet in fleets:
                    result = await fleet.wait(msg_id, timeout=30)
                    assert not result["timed_out"], result
                    assert result["missing"] == 0 and result["wrong_id"] == 0, result
                    assert result["lost"] == 0 and not result["problems"], result
    finally:
        for fleet in fleets:
            fleet.close()

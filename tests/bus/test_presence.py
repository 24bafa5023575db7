"""Shared presence on a Redis server of the test's own: the connection-time guard, node death."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import redis.asyncio as aioredis

from tests.redis_server import RedisServer
from tidings.bus.presence import RedisPresence


async def settle(*nodes: RedisPresence) -> None:
    for node in nodes:
        await node._flush()


async def test_the_newest_connection_wins_and_a_dead_node_holds_nothing(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    client = aioredis.from_url(server.url)
    local: dict[str, set[str]] = {"n1": set(), "n2": set()}
    n1 = RedisPresence(client, "t", "n1", lambda r: r in local["n1"])
    n2 = RedisPresence(client, "t", "n2", lambda r: r in local["n2"])
    try:
        n1.start()
        n2.start()
        n1.attached("dev")
        await settle(n1)
        assert await n2.online("dev")  # held by n1, which is alive
        await asyncio.sleep(0.002)
        n2.attached("dev")  # the device reconnected to n2
        stale_entry = n1._values["dev"]
        n1.detached("dev")  # n1 notices its old connection closed: must not clear n2's entry
        await settle(n2, n1)
        assert await n1.online("dev")
        n1._pending["dev"] = (True, stale_entry)  # n1's late "attached": older, not written
        await settle(n1)
        assert (await client.hget("t:presence", "dev")).decode().startswith("n2 ")
        await n2.close()  # n2 dies: its heartbeat key goes (or expires)
        assert not await n1.online("dev")
        assert not await n1.online("never-seen")
    finally:
        await n1.close()
        await client.aclose()
        server.kill()


async def test_changes_wait_while_redis_is_away(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    client = aioredis.from_url(server.url, socket_connect_timeout=1)
    node = RedisPresence(client, "t", "n1", lambda r: False)
    try:
        server.kill()
        node.attached("dev")
        with contextlib.suppress(Exception):
            await settle(node)
        assert "dev" in node._pending  # kept for the next flush
        server.start()
        await settle(node)
        assert (await client.hget("t:presence", "dev")) is not None
    finally:
        await node.close()
        await client.aclose()
        server.kill()

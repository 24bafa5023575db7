"""One contract for both buses: the in-process one and Redis between nodes (the machine's
Redis on 127.0.0.1:6379 with a key prefix of the test's own, or a Redis server the test runs)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tidings.bus.base import Bus
from tidings.bus.events import (
    BusEvent,
    Ephemeral,
    InboxChanged,
    LogAppended,
    Revoked,
    WebPushed,
)
from tidings.bus.local import LocalBus
from tidings.bus.redis import RedisBus
from tidings.core.models import Delivery, TargetKind, TopicOp, WebPushMessage

SHARED_REDIS = "redis://127.0.0.1:6379/0"

EVENTS: list[BusEvent] = [
    InboxChanged(("r1", "r2"), {"r1": [Delivery("r1", 1, "m1", '{"t":1}', 99)]}),
    LogAppended("1000000000001"),
    Ephemeral("1000000000001", "m2", '{"t":2}', TargetKind.TOPIC, (), ("a", "b"), TopicOp.EXCEPT),
    Revoked("1000000000001", 7, TargetKind.REGID, ("r3",)),
    WebPushed("u1", WebPushMessage("v1", "c1", "ZGF0YQ", {"encoding": "aes128gcm"}, 5)),
]


class Heard:
    def __init__(self, bus: Bus) -> None:
        self.events: list[BusEvent] = []
        self.rescans = 0
        bus.subscribe(self.events.append)
        bus.on_rescan(self._rescan)

    def _rescan(self) -> None:
        self.rescans += 1

    async def until(self, n: int, timeout: float = 5.0) -> list[BusEvent]:
        async with asyncio.timeout(timeout):
            while len(self.events) < n:
                await asyncio.sleep(0.01)
        return self.events


@pytest.fixture(params=["local", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, Bus]]:
    """Two nodes' buses (the same bus, for the in-process one)."""
    if request.param == "local":
        bus = LocalBus()
        yield bus, bus
        await bus.close()
        return
    prefix = "tidings-test-" + secrets.token_hex(4)
    a, b = RedisBus(SHARED_REDIS, prefix), RedisBus(SHARED_REDIS, prefix)
    for bus in (a, b):
        await bus.start()
        await asyncio.wait_for(bus.subscribed.wait(), 5)
    yield a, b
    await a.close()
    await b.close()


async def test_every_event_reaches_every_node_once_as_it_was(pair: tuple[Bus, Bus]) -> None:
    a, b = pair
    here, there = Heard(a), Heard(b) if b is not a else None
    for event in EVENTS:
        await a.publish(event)
    assert await here.until(len(EVENTS)) == EVENTS  # the publishing node's own, whole
    if there is None:
        return
    got = await there.until(len(EVENTS))
    await asyncio.sleep(0.1)
    assert len(here.events) == len(EVENTS) and len(got) == len(EVENTS)  # once each, no echo
    first = got[0]
    assert isinstance(first, InboxChanged) and first.reg_ids == ("r1", "r2")
    assert first.deliveries is None  # rows do not cross nodes: the node reads the inbox
    assert got[1:] == EVENTS[1:]


async def test_a_broken_handler_does_not_stop_the_others(pair: tuple[Bus, Bus]) -> None:
    a, b = pair

    def broken(event: BusEvent) -> None:
        raise RuntimeError("bug")

    b.subscribe(broken)
    heard = Heard(b)
    await a.publish(LogAppended("1"))
    await a.publish(LogAppended("2"))
    assert await heard.until(2) == [LogAppended("1"), LogAppended("2")]


async def test_redis_lost_and_back_makes_the_nodes_rescan(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    a, b = RedisBus(server.url, "t"), RedisBus(server.url, "t")
    heard_a, heard_b = Heard(a), Heard(b)
    try:
        for bus in (a, b):
            await bus.start()
            await asyncio.wait_for(bus.subscribed.wait(), 5)
        server.kill()
        await a.publish(LogAppended("lost"))  # no error: the change is committed already
        assert heard_a.events == [LogAppended("lost")]  # the node's own handlers have it
        server.start()
        async with asyncio.timeout(15):
            while heard_b.rescans < 1 or not (a.subscribed.is_set() and b.subscribed.is_set()):
                await asyncio.sleep(0.05)
        async with asyncio.timeout(5):  # a told the others it lost an event
            while a.missed:
                await asyncio.sleep(0.05)
        await a.publish(LogAppended("after"))
        assert await heard_b.until(1) == [LogAppended("after")]
    finally:
        await a.close()
        await b.close()
        server.kill()

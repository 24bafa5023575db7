"""Broadcasts sent from the app log to devices that ask for it: no inbox row, the cursor moves
with the acks, and what was not acked comes again (after the ack timeout, after a reconnect)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Phone, RawDevice, running_node
from tests.e2e.test_delivery import send
from tidings.clock import ManualClock
from tidings.core.models import NewApp
from tidings.node import Node


async def cursor(node: Node, reg_id: str) -> int:
    device = await node.store.get_device(reg_id)
    assert device is not None
    return device.log_cursor


async def delivered(node: Node, app: NewApp, msg_id: str) -> int:
    stats = await node.store.message_stats(app.app.app_id, msg_id)
    assert stats is not None
    return stats.delivered


async def until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


def log_ack(reg: str, *frames: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageType": "ack",
        "updates": [{"reg_id": reg, "log": f["log"], "id": f["id"]} for f in frames],
    }


async def test_broadcast_from_the_log_moves_the_cursor_only_when_acked(
    node: Node, app: NewApp
) -> None:
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        answer = await dev.register(app, features=["log"])
        assert answer["features"] == ["log"]
        reg = answer["reg_id"]
        msg_id = await send(node, app, "all")
        frame = await dev.recv()
        assert (frame["messageType"], frame["id"], frame["log"]) == ("notification", msg_id, 1)
        assert "seq" not in frame
        assert frame["message"]["title"] == "t"
        await asyncio.sleep(0.1)
        assert (await node.store.counts())["inbox"] == 0  # nothing stored per device
        assert await cursor(node, reg) == 0  # not acked: not moved
        await dev.send(log_ack(reg, frame))
        await until(lambda: _at(node, reg, 1))
        assert await delivered(node, app, msg_id) == 1
        await dev.send(log_ack(reg, frame))  # a repeated ack counts nothing
        await asyncio.sleep(0.2)
        assert await delivered(node, app, msg_id) == 1


async def _at(node: Node, reg: str, offset: int) -> bool:
    return await cursor(node, reg) == offset


async def test_unacked_log_broadcast_is_sent_again_after_the_ack_timeout(
    node: Node, app: NewApp
) -> None:
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        reg = (await dev.register(app, features=["log"]))["reg_id"]
        msg_id = await send(node, app, "all")
        first = await dev.recv()
        again = await dev.recv(timeout=3)  # ack_timeout_s is 0.5 in the fixture
        assert (again["id"], again["log"]) == (msg_id, first["log"])
        await dev.send(log_ack(reg, again))
        await until(lambda: _at(node, reg, 1))
        with pytest.raises(TimeoutError):
            await dev.recv(timeout=1.2)
        assert await delivered(node, app, msg_id) == 1


async def test_unacked_log_broadcast_comes_back_after_reconnect(node: Node, app: NewApp) -> None:
    async with RawDevice.connect(node) as dev:
        uaid = await dev.hello()
        reg = (await dev.register(app, features=["log"]))["reg_id"]
        ids = [await send(node, app, "all", title=f"m{i}") for i in range(3)]
        got = [await dev.recv() for _ in range(3)]
        assert [g["id"] for g in got] == ids
        assert [g["log"] for g in got] == [1, 2, 3]
        await dev.send(log_ack(reg, got[0]))
        await dev.send(log_ack(reg, got[2]))  # out of order: the cursor may only pass the first
        await until(lambda: _at(node, reg, 1))
        await asyncio.sleep(0.1)
        assert await cursor(node, reg) == 1
    async with RawDevice.connect(node) as dev:
        assert await dev.hello(uaid) == uaid
        assert (await dev.register(app, features=["log"]))["reg_id"] == reg
        back = [await dev.recv(), await dev.recv()]  # from the store now, through the inbox
        assert [b["id"] for b in back] == ids[1:]
        assert [b["seq"] for b in back] == [1, 2]
        for b in back:
            await dev.send(
                {"messageType": "ack", "updates": [{"reg_id": reg, "seq": b["seq"], "id": b["id"]}]}
            )
        await until(lambda: _inbox_empty(node))
        with pytest.raises(TimeoutError):
            await dev.recv(timeout=0.8)
        # each counted once: the first from memory, the others when their inbox copies were acked
        assert [await delivered(node, app, i) for i in ids] == [1, 1, 1]
        # caught up through the inbox, the device is back in log mode
        later = await send(node, app, "all", title="later")
        frame = await dev.recv()
        assert (frame["id"], frame["log"]) == (later, 4)


async def _inbox_empty(node: Node) -> bool:
    return (await node.store.counts())["inbox"] == 0


async def test_log_mode_still_checks_topics(node: Node, app: NewApp) -> None:
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        reg = (await dev.register(app, features=["log"]))["reg_id"]
        await send(node, app, "topic", "news")  # not subscribed: skipped, the cursor passes it
        await until(lambda: _at(node, reg, 1))
        await dev.send(
            {
                "messageType": "app_command",
                "req": "c",
                "reg_id": reg,
                "command": "subscribe-topic",
                "args": ["news"],
            }
        )
        assert (await dev.recv())["code"] == 0
        msg_id = await send(node, app, "topic", "news")
        frame = await dev.recv()
        assert (frame["id"], frame["log"]) == (msg_id, 2)


async def test_sdk_takes_broadcasts_from_the_log_and_acks_them(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app, topics=["t"]).start()
    sent = [await send(node, app, "all", title="a"), await send(node, app, "topic", "t")]
    await phone.wait_for(2)
    assert phone.ids() == sent
    assert [m.log for m in phone.messages] == [1, 2]
    assert [m.seq for m in phone.messages] == [0, 0]
    await until(lambda: _at(node, phone.reg_id, 2))
    assert (await node.store.counts())["inbox"] == 0
    await phone.stop()


async def test_a_full_log_window_waits_for_acks(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d", inflight_window=2) as node:
        app = await node.create_app("Demo", "com.example.demo")
        async with RawDevice.connect(node) as dev:
            await dev.hello()
            reg = (await dev.register(app, features=["log"]))["reg_id"]
            ids = [await send(node, app, "all", title=f"m{i}") for i in range(3)]
            got = [await dev.recv(), await dev.recv()]
            assert [g["log"] for g in got] == [1, 2]
            with pytest.raises(TimeoutError):
                await dev.recv(timeout=0.5)  # two unacked: the third waits
            await dev.send(log_ack(reg, got[0]))
            third = await dev.recv()
            assert (third["id"], third["log"]) == (ids[2], 3)
            # two more wait behind the full window; acking both sent lets both go, in one write
            ids += [await send(node, app, "all", title=f"m{i}") for i in (3, 4)]
            await dev.send(log_ack(reg, got[1], third))
            rest = [await dev.recv(), await dev.recv()]
            assert [(r["id"], r["log"]) for r in rest] == [(ids[3], 4), (ids[4], 5)]


async def test_an_expired_unacked_log_broadcast_is_not_sent_again(tmp_path: Path) -> None:
    clock = ManualClock(start_ms=1_800_000_000_000)
    async with running_node(tmp_path / "d", clock=clock, ack_timeout_s=0.3) as node:
        app = await node.create_app("Demo", "com.example.demo")
        async with RawDevice.connect(node) as dev:
            await dev.hello()
            reg = (await dev.register(app, features=["log"]))["reg_id"]
            msg_id = await send(node, app, "all", time_to_live=1000)
            assert (await dev.recv())["id"] == msg_id
            clock.advance(1000)  # expired now: dropped instead of sent again
            with pytest.raises(TimeoutError):
                await dev.recv(timeout=1.0)
            await until(lambda: _at(node, reg, 1))  # the cursor passes it
            assert await delivered(node, app, msg_id) == 0


async def test_a_window_freed_by_expiry_lets_the_waiting_broadcast_go(tmp_path: Path) -> None:
    clock = ManualClock(start_ms=1_800_000_000_000)
    async with running_node(
        tmp_path / "d", clock=clock, ack_timeout_s=60, inflight_window=1
    ) as node:
        app = await node.create_app("Demo", "com.example.demo")
        async with RawDevice.connect(node) as dev:
            await dev.hello()
            reg = (await dev.register(app, features=["log"]))["reg_id"]
            await send(node, app, "all", title="short", time_to_live=1000)
            assert (await dev.recv())["message"]["title"] == "short"  # left unacked
            later = await send(node, app, "all", title="long")  # the window (1) is full
            with pytest.raises(TimeoutError):
                await dev.recv(timeout=0.5)
            clock.advance(1000)  # the first expires: its place is free, long before its timeout
            assert (await dev.recv(timeout=5))["id"] == later
            assert reg not in node.hub._log_wait

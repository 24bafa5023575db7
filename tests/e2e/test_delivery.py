"""Store-and-forward delivery on a real node: offline devices, TTL, acks, redelivery, limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Phone, RawDevice, running_node
from tidings.client.sender import SenderClient
from tidings.clock import ManualClock
from tidings.core.models import NewApp
from tidings.node import Node
from tidings.protocol import codes


def sender(node: Node, app: NewApp) -> SenderClient:
    return SenderClient(node.urls()["api"], app.app_secret, app.app.package)


async def send(node: Node, app: NewApp, target: str, to: Any = None, **kw: Any) -> str:
    client = sender(node, app)
    try:
        kw.setdefault("title", "t")
        kw.setdefault("description", "d")
        r = await asyncio.to_thread(client.send, target, to, **kw)
    finally:
        client.close()
    return str(r["data"]["id"])


async def test_offline_device_gets_everything_on_reconnect(
    node: Node, app: NewApp, tmp_path: Path
) -> None:
    state = tmp_path / "phone.json"
    phone = await Phone(node, app, state=state, aliases=["bo"], topics=["t"]).start()
    reg_id = phone.reg_id
    await phone.stop()
    sent = [
        await send(node, app, "regid", reg_id, title="one"),
        await send(node, app, "alias", "bo", title="two"),
        await send(node, app, "topic", "t", title="three"),
        await send(node, app, "all", title="four"),
    ]
    again = await Phone(node, app, state=state).start()
    assert again.reg_id == reg_id  # stable across reconnects (state file)
    await again.wait_for(4)
    assert again.ids() == sent
    assert [m.seq for m in again.messages] == [1, 2, 3, 4]
    await asyncio.sleep(0.2)
    assert len(again.messages) == 4
    await again.stop()


async def test_new_device_does_not_receive_old_broadcasts(node: Node, app: NewApp) -> None:
    await send(node, app, "all", title="before")
    phone = await Phone(node, app).start()
    after = await send(node, app, "all", title="after")
    await phone.wait_for(1)
    assert phone.ids() == [after]
    await phone.stop()


async def test_ttl_expiry_with_an_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock(start_ms=1_800_000_000_000)
    async with running_node(tmp_path / "d", clock=clock) as node:
        app = await node.create_app("Demo", "com.example.demo")
        state = tmp_path / "p.json"
        phone = await Phone(node, app, state=state, topics=["t"]).start()
        await phone.stop()
        await send(node, app, "regid", phone.reg_id, time_to_live=1000, title="short")
        await send(node, app, "topic", "t", time_to_live=1000, title="short-topic")
        kept = await send(node, app, "regid", phone.reg_id, time_to_live=1001, title="kept")
        kept_topic = await send(node, app, "topic", "t", time_to_live=1001, title="kept-t")
        clock.advance(1000)  # the first two are exactly expired now
        phone = await Phone(node, app, state=state).start()
        await phone.wait_for(2)
        await asyncio.sleep(0.2)
        assert phone.ids() == [kept, kept_topic]
        await phone.stop()


class TickingClock(ManualClock):
    """A clock that moves 1 ms every time it is read: a message with a 1 ms time to live is
    expired by the time anything after its acceptance looks at the clock."""

    def now_ms(self) -> int:
        self.advance(1)
        return super().now_ms()


async def test_a_message_that_expires_before_it_is_sent_is_never_delivered(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path / "d", clock=TickingClock()) as node:
        app = await node.create_app("Demo", "com.example.demo")
        phone = await Phone(node, app).start()  # connected: fresh rows go straight to it
        gone = await send(node, app, "regid", phone.reg_id, time_to_live=1, title="gone")
        kept = await send(node, app, "regid", phone.reg_id, title="kept")
        await phone.wait_for(1)
        await asyncio.sleep(0.2)
        assert phone.ids() == [kept]
        stats = await node.store.message_stats(app.app.app_id, gone)
        assert stats is not None and (stats.resolved, stats.delivered) == (1, 0)
        await phone.stop()


async def test_ttl_zero_is_online_now_or_never(node: Node, app: NewApp) -> None:
    online = await Phone(node, app, topics=["t"]).start()
    offline = await Phone(node, app, topics=["t"]).start()
    await offline.stop()
    before = await node.store.counts()
    await send(node, app, "regid", [online.reg_id, offline.reg_id], time_to_live=0, title="now")
    await send(node, app, "topic", "t", title="once", extra={"only_send_once": "1"})
    await send(node, app, "all", time_to_live=0, title="all-now")
    await online.wait_for(3)
    assert [m.seq for m in online.messages] == [0, 0, 0]
    assert await node.store.counts() == before  # nothing stored
    await offline.start()
    await asyncio.sleep(0.3)
    assert offline.messages == []
    await online.stop()
    await offline.stop()


async def test_unacked_messages_are_redelivered(node: Node, app: NewApp) -> None:
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        reg = (await dev.register(app))["reg_id"]
        msg_id = await send(node, app, "regid", reg)
        first = await dev.recv()
        assert (first["id"], first["seq"]) == (msg_id, 1)
        again = await dev.recv(timeout=3)  # ack_timeout_s is 0.5 in the fixture
        assert (again["id"], again["seq"]) == (msg_id, 1)
        await dev.send({"messageType": "ack", "updates": [{"reg_id": reg, "seq": 1, "id": msg_id}]})
        with pytest.raises(TimeoutError):
            await dev.recv(timeout=1.2)
    assert (await node.store.counts())["inbox"] == 0


async def test_unacked_messages_come_back_after_reconnect(node: Node, app: NewApp) -> None:
    async with RawDevice.connect(node) as dev:
        uaid = await dev.hello()
        reg = (await dev.register(app))["reg_id"]
        ids = [await send(node, app, "regid", reg, title=f"m{i}") for i in range(3)]
        got = [await dev.recv() for _ in range(3)]
        await dev.send(
            {
                "messageType": "ack",
                "updates": [{"reg_id": reg, "seq": got[0]["seq"], "id": got[0]["id"]}],
            }
        )
        await asyncio.sleep(0.1)
    async with RawDevice.connect(node) as dev:
        assert await dev.hello(uaid) == uaid
        assert (await dev.register(app))["reg_id"] == reg
        back = [await dev.recv(), await dev.recv()]
        assert [b["id"] for b in back] == ids[1:]


async def test_backlog_cap_keeps_newest_and_one_resync_marker(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d", backlog_cap=5) as node:
        app = await node.create_app("Demo", "com.example.demo")
        state = tmp_path / "p.json"
        phone = await Phone(node, app, state=state).start()
        await phone.stop()
        ids = [await send(node, app, "regid", phone.reg_id, title=f"m{i}") for i in range(8)]
        phone = await Phone(node, app, state=state).start()
        await phone.wait(lambda: len(phone.messages) >= 5 and phone.resyncs == 1)
        assert phone.ids() == ids[3:]
        device = await node.store.get_device(phone.reg_id)
        assert device is not None and device.dropped == 3
        await phone.stop()


async def test_a_failed_resync_callback_gets_the_marker_again(tmp_path: Path) -> None:
    """The drop is never silent: the SDK acks the marker only after the app handled it."""
    async with running_node(tmp_path / "d", backlog_cap=2, ack_timeout_s=0.3) as node:
        app = await node.create_app("Demo", "com.example.demo")
        state = tmp_path / "p.json"
        phone = await Phone(node, app, state=state).start()
        await phone.stop()
        for i in range(4):
            await send(node, app, "regid", phone.reg_id, title=f"m{i}")
        phone = Phone(node, app, state=state)
        handled, failed = phone.client.on_resync, []

        def fail_once(app_id: str) -> None:
            if not failed:
                failed.append(app_id)
                raise RuntimeError("the app is not ready")
            assert handled is not None
            handled(app_id)

        phone.client.on_resync = fail_once
        await phone.start()
        await phone.wait(lambda: phone.resyncs == 1 and len(phone.messages) >= 2)
        assert failed == [app.app.app_id]
        await phone.stop()


async def test_slow_device_is_cut_off_and_loses_nothing(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d", send_buffer_bytes=65_536, inflight_window=2000) as node:
        app = await node.create_app("Demo", "com.example.demo")
        fast = await Phone(node, app).start()
        # a device that registers and then never reads: tiny receive buffer, raw socket
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", node.gateway_port))
        reader, writer = await asyncio.open_connection(sock=sock)
        slow = await _raw_ws_register(reader, writer, app)
        # enough to fill the kernel's socket buffers (up to 4 MiB) and then ours
        client = sender(node, app)
        entry = {
            "target": slow,
            "message": {
                "restricted_package_name": app.app.package,
                "pass_through": 1,
                "payload": "x" * 4000,
            },
        }
        for _ in range(4):
            r = await asyncio.to_thread(
                client.call, "/v2/multi_messages/regids", {"messages": json.dumps([entry] * 400)}
            )
            assert r["code"] == 0
        client.close()
        last = await send(node, app, "regid", fast.reg_id, title="still fine")
        await fast.wait_for(1)
        assert fast.ids() == [last]
        async with asyncio.timeout(10):
            while node.hub.stats["slow_disconnects"] < 1:
                await asyncio.sleep(0.05)
        kept = await node.store.pending(slow, limit=2000)  # kept for later, within the cap
        assert len(kept) == 1001 and sum(d.is_resync for d in kept) == 1
        writer.close()
        await fast.stop()


async def _raw_ws_register(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: NewApp
) -> str:
    """Minimal client handshake and registration over a raw socket (client frames masked)."""
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")

    def frame(obj: dict[str, Any]) -> bytes:
        data = json.dumps(obj).encode()
        assert len(data) < 65536
        size = (
            bytes([0x80 | len(data)])
            if len(data) < 126
            else bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
        )
        return b"\x81" + size + b"\0\0\0\0" + data  # a zero mask key leaves data as is

    async def read_text() -> dict[str, Any]:
        head = await reader.readexactly(2)
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2), "big")
        return dict(json.loads(await reader.readexactly(size)))

    writer.write(frame({"messageType": "hello"}))
    await read_text()
    writer.write(
        frame(
            {
                "messageType": "app_register",
                "req": "1",
                "app_id": app.app.app_id,
                "app_key": app.app_key,
                "package": app.app.package,
            }
        )
    )
    return str((await read_text())["reg_id"])


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"app_key": "wrong"}, codes.BAD_APP_KEY),
        ({"package": "com.evil.app"}, codes.BAD_PACKAGE),
        ({"app_id": "123"}, codes.BAD_APP_ID),
    ],
)
async def test_registration_is_refused_with_mi_push_codes(
    node: Node, app: NewApp, over: dict[str, str], code: int
) -> None:
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        reply = await dev.register(app, **over)
        assert (reply["status"], reply["code"]) == (403, code) and reply["reason"]
        assert (await node.store.counts())["devices"] == 0


async def test_bad_frames_on_a_real_socket(node: Node, app: NewApp) -> None:
    async with RawDevice.connect(node) as dev:
        await dev.send({"messageType": "app_register"})
        assert (await dev.recv())["code"] == codes.HELLO_FIRST
        assert await dev.closed_with() == codes.CLOSE_POLICY
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        for bad in ("{", "[]", '{"messageType":"nope"}', '{"messageType":"ack"}'):
            await dev.send(bad)
            assert (await dev.recv())["messageType"] == "error"
        await dev.ws.send(b"\x00\x01")
        assert (await dev.recv())["code"] == codes.BAD_FRAME
        await dev.send("{}")
        assert await dev.recv() == {}
        await dev.ws.send(['{"messageType"', ':"nope"}'])  # a fragmented text message
        assert (await dev.recv())["code"] == codes.UNKNOWN_TYPE
        pong = await dev.ws.ping()
        await asyncio.wait_for(pong, 5)  # control frames still reach websockets
        await dev.send("{}")
        assert await dev.recv() == {}
        reg = (await dev.register(app))["reg_id"]
        await dev.send(
            {
                "messageType": "app_command",
                "req": "c",
                "reg_id": reg,
                "command": "set-alias",
                "args": ["a" * 129],
            }
        )
        assert (await dev.recv())["code"] == 65008
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        await dev.send("x" * 70_000)  # over max_frame_bytes
        assert await dev.closed_with() == codes.CLOSE_TOO_BIG


async def test_unknown_uaid_is_replaced_and_issued_one_kept(node: Node, app: NewApp) -> None:
    async with RawDevice.connect(node) as dev:
        issued = await dev.hello("f" * 32)
        assert issued != "f" * 32  # only identities the server issued are honoured
        await dev.register(app)
    async with RawDevice.connect(node) as dev:
        assert await dev.hello(issued) == issued


async def test_device_commands_and_unregister(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app, aliases=["x1", "x2"], account="acc", topics=["t"]).start()
    device = await node.store.get_device(phone.reg_id)
    assert device is not None
    assert (device.aliases, device.account, device.topics) == (("x1", "x2"), "acc", ("t",))
    res = await phone.client.unset_alias(app.app.app_id, "x1")
    assert res.code == 0
    await phone.client.unsubscribe(app.app.app_id, "t")
    await phone.client.unset_account(app.app.app_id, "acc")
    device = await node.store.get_device(phone.reg_id)
    assert device is not None
    assert (device.aliases, device.account, device.topics) == (("x2",), None, ())
    bad = await phone.client.set_alias(app.app.app_id, "")
    assert bad.code == 65012
    await phone.stop()


async def test_each_entry_is_sent_again_only_after_its_own_ack_timeout(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d", ack_timeout_s=1.0) as node:
        app = await node.create_app("Demo", "com.example.demo")
        async with RawDevice.connect(node) as dev:
            await dev.hello()
            reg = (await dev.register(app))["reg_id"]
            m1 = await send(node, app, "regid", reg, title="m1")
            assert (await dev.recv())["id"] == m1
            await asyncio.sleep(0.8)
            m2 = await send(node, app, "regid", reg, title="m2")
            loop = asyncio.get_running_loop()
            t2 = loop.time()
            assert (await dev.recv())["id"] == m2
            seen = []  # m1 times out at ~1.0 s, m2 only at ~1.8 s: m2 is acked in time
            with contextlib.suppress(TimeoutError):
                while loop.time() - t2 < 0.85:
                    seen.append(await dev.recv(timeout=max(0.01, 0.85 - (loop.time() - t2))))
            ack = {"messageType": "ack", "updates": [{"reg_id": reg, "seq": 2, "id": m2}]}
            await dev.send(ack)
            assert m1 in [s["id"] for s in seen]  # m1's timeout passed: it came again
            assert m2 not in [s["id"] for s in seen]  # m2's had not

"""At least once on the wire, exactly once in the app: lost acks, jobkeys, keepalive."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from tests.e2e.helpers import Phone, RawDevice, running_node
from tidings.client.device import DeviceClient
from tidings.core.models import NewApp
from tidings.node import Node
from tidings.protocol import codes


class LossyAcks(DeviceClient):
    """A device on a bad network: every tenth ack never reaches the server."""

    sent_acks = 0
    lost = 0

    async def _ack(self, reg_id: str, seq: int, msg_id: str, log: int = 0) -> None:
        self.sent_acks += 1
        if self.sent_acks % 10 == 0:
            self.lost += 1
            return
        await super()._ack(reg_id, seq, msg_id, log)


async def _multi(node: Node, app: NewApp, entries: list[dict[str, Any]]) -> dict[str, Any]:
    from tidings.client.sender import SenderClient

    client = SenderClient(node.urls()["api"], app.app_secret, app.app.package)
    try:
        return await asyncio.to_thread(
            client.call, "/v2/multi_messages/regids", {"messages": json.dumps(entries)}
        )
    finally:
        client.close()


def _entry(reg_id: str, pkg: str, title: str, **extra: str) -> dict[str, Any]:
    return {
        "target": reg_id,
        "message": {
            "restricted_package_name": pkg,
            "title": title,
            "description": "d",
            "extra": extra,
        },
    }


async def test_lost_acks_mean_redelivery_not_duplicates(node: Node, app: NewApp) -> None:
    phone = Phone(node, app)
    lossy = LossyAcks(
        node.urls()["gateway"], on_notification=phone._got, backoff_base=0.05, backoff_max=0.5
    )
    lossy.add_app(phone.cfg)
    phone.client = lossy
    await phone.start()
    pkg = app.app.package
    r = await _multi(node, app, [_entry(phone.reg_id, pkg, f"m{i}") for i in range(100)])
    await phone.wait_for(100)
    async with asyncio.timeout(10):  # redelivery (ack_timeout_s 0.5) until every ack landed
        while (await node.store.counts())["inbox"]:
            await asyncio.sleep(0.1)
    assert phone.ids() == r["data"]["ids"]  # each once, in order
    assert lossy.lost >= 10
    assert node.hub.stats["redelivered"] >= 10
    await phone.stop()


async def test_jobkey_shows_only_the_first(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    pkg = app.app.package
    entries = [
        _entry(phone.reg_id, pkg, "first", jobkey="batch-1"),
        _entry(phone.reg_id, pkg, "second", jobkey="batch-1"),
        _entry(phone.reg_id, pkg, "other", jobkey="batch-2"),
    ]
    await _multi(node, app, entries)
    await phone.wait_for(2)
    await asyncio.sleep(0.3)
    assert [m.title for m in phone.messages] == ["first", "other"]
    async with asyncio.timeout(5):  # the duplicate was still acked
        while (await node.store.counts())["inbox"]:
            await asyncio.sleep(0.05)
    await phone.stop()


async def test_silent_connections_are_closed(tmp_path: Path) -> None:
    async with running_node(
        tmp_path / "d", hello_timeout_s=0.3, ping_interval_s=0.3, ping_timeout_s=0.3
    ) as node:
        new = await node.create_app("Demo", "com.example.demo")
        async with RawDevice.connect(node) as dev:  # never says hello
            assert await dev.closed_with() == codes.CLOSE_IDLE
        # a client that answers pings (websockets does) stays connected while silent
        async with RawDevice.connect(node) as dev:
            await dev.hello()
            await dev.register(new)
            await asyncio.sleep(1.5)
            await dev.send("{}")
            assert await dev.recv() == {}
        # a peer that stops answering pings is dropped
        sock = socket.create_connection(("127.0.0.1", node.gateway_port))
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + bytes([0x81, 0x80 | 24])
            + b"\0\0\0\0"
            + b'{"messageType":"hello"} '
        )
        sock.settimeout(5)
        received = b""
        while True:
            chunk = await asyncio.to_thread(sock.recv, 65536)
            if not chunk:
                break
            received += chunk
        sock.close()
        assert b"HTTP/1.1 101" in received and b'"hello"' in received
        assert len(node.gateway.connections) == 0

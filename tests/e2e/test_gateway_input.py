"""Bad device input on a real gateway: each gets its documented answer, and no device loses
anything for it (the frames that broke the gateway once, found by review)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.e2e.helpers import RawDevice
from tests.e2e.test_delivery import send
from tidings.core.models import NewApp
from tidings.node import Node
from tidings.protocol import codes
from tidings.protocol.session import MAX_APPS


def _frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    """A client frame with a zero mask key (so its bytes are the payload's)."""
    assert len(payload) < 126
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


class RawSocket:
    """WebSocket by hand, byte for byte: for framing the client library would not send."""

    HANDSHAKE = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, node: Node, first: bytes = b"") -> RawSocket:
        port = int(node.urls()["gateway"].rsplit(":", 1)[1].strip("/"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(cls.HANDSHAKE + first)
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert response.startswith(b"HTTP/1.1 101")
        return cls(reader, writer)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def next(self) -> tuple[int, bytes]:
        """The next server frame: (opcode, payload)."""
        head = await asyncio.wait_for(self.reader.readexactly(2), 5)
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        return head[0] & 0x0F, await self.reader.readexactly(size)

    async def text(self) -> dict[str, Any]:
        opcode, payload = await self.next()
        assert opcode == 1, (opcode, payload)
        return dict(json.loads(payload))

    async def close_code(self) -> int:
        opcode, payload = await self.next()
        assert opcode == 8, (opcode, payload)
        return int.from_bytes(payload[:2], "big")

    def close(self) -> None:
        self.writer.close()


async def test_out_of_range_integers_are_refused_and_redelivery_goes_on(
    node: Node, app: NewApp
) -> None:
    async with RawDevice.connect(node) as bad, RawDevice.connect(node) as other:
        await bad.hello()
        reg = (await bad.register(app))["reg_id"]
        await other.hello()
        other_reg = (await other.register(app))["reg_id"]
        msg_id = await send(node, app, "regid", other_reg)
        assert (await other.recv())["id"] == msg_id  # and not acked
        for update in ({"seq": 2**63}, {"log": 2**63}, {"seq": True}, {"log": 0}):
            await bad.send(
                {"messageType": "ack", "updates": [{"reg_id": reg, "id": "m", **update}]}
            )
            assert (await bad.recv())["code"] == codes.BAD_FRAME
        for agreed_at in (2**63, True, -1):
            answer = await bad.register(
                app, req="c", consent={"version": "1", "agreed_at": agreed_at}
            )
            assert (answer["code"], answer["req"]) == (codes.BAD_FRAME, "c")
        again = await other.recv(timeout=3)  # ack_timeout_s is 0.5 in the fixture: it comes again
        assert again["id"] == msg_id
        await other.send(
            {"messageType": "ack", "updates": [{"reg_id": other_reg, "seq": 1, "id": msg_id}]}
        )
    async with asyncio.timeout(5):
        while (await node.store.counts())["inbox"]:
            await asyncio.sleep(0.05)


async def test_an_ack_with_the_wrong_id_acks_nothing(node: Node, app: NewApp) -> None:
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        reg = (await dev.register(app))["reg_id"]
        msg_id = await send(node, app, "regid", reg)
        assert (await dev.recv())["id"] == msg_id
        await dev.send(
            {"messageType": "ack", "updates": [{"reg_id": reg, "seq": 1, "id": "other"}]}
        )
        assert (await dev.recv(timeout=3))["id"] == msg_id  # still unacked: sent again
    assert (await node.store.counts())["inbox"] == 1


async def test_odd_values_get_error_frames_and_the_connection_goes_on(
    node: Node, app: NewApp
) -> None:
    async with RawDevice.connect(node) as dev:
        issued = await dev.hello("a\u0000b")  # an unusable uaid is replaced
        assert "\u0000" not in issued
        reg = (await dev.register(app))["reg_id"]
        await dev.send({"messageType": "ack", "updates": [{"reg_id": [], "seq": 1, "id": "x"}]})
        assert (await dev.recv())["code"] == codes.NOT_REGISTERED
        await dev.send(
            {
                "messageType": "app_command",
                "req": "c",
                "reg_id": reg,
                "command": "set-alias",
                "args": ["a\u0000b"],
            }
        )
        assert (await dev.recv())["code"] == codes.BAD_FRAME
        assert (await dev.register(app, app_id="a\u0000"))["code"] == codes.BAD_FRAME
        await dev.send("{}")
        assert await dev.recv() == {}


async def test_frames_right_behind_hello_are_taken(node: Node, app: NewApp) -> None:
    register = {
        "messageType": "app_register",
        "req": "r",
        "app_id": app.app.app_id,
        "app_key": app.app_key,
        "package": app.app.package,
    }
    async with RawDevice.connect(node) as dev:
        await dev.ws.send(json.dumps({"messageType": "hello"}))
        await dev.ws.send(json.dumps({"messageType": "hello"}))
        await dev.ws.send(json.dumps(register))
        assert (await dev.recv())["code"] == codes.BAD_FRAME  # the second hello, answered at once
        assert (await dev.recv())["messageType"] == "hello"
        answer = await dev.recv()
        assert (answer["messageType"], answer["code"]) == ("app_register", 0)


async def test_the_app_limit_holds_for_registrations_sent_together(node: Node) -> None:
    apps = [await node.create_app(f"A{i}", f"com.example.a{i}") for i in range(MAX_APPS + 2)]
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        for i, a in enumerate(apps):
            await dev.ws.send(
                json.dumps(
                    {
                        "messageType": "app_register",
                        "req": str(i),
                        "app_id": a.app.app_id,
                        "app_key": a.app_key,
                        "package": a.app.package,
                    }
                )
            )
        answers = {}
        for _ in apps:
            answer = await dev.recv()
            answers[answer["req"]] = answer["code"]
    assert sorted(answers.values()).count(0) == MAX_APPS
    assert [answers[str(i)] for i in (MAX_APPS, MAX_APPS + 1)] == [codes.TOO_MANY_APPS] * 2


async def test_a_text_frame_inside_a_fragmented_message_fails_the_connection(
    node: Node,
) -> None:
    sock = await RawSocket.open(node)
    sock.write(_frame(b'{"messageType":"hello"}'))
    assert (await sock.text())["messageType"] == "hello"
    sock.write(_frame(b"{}"))  # the fast path is on
    assert await sock.text() == {}
    sock.write(_frame(b"{", fin=False))  # a fragmented message begins (to websockets)
    await asyncio.sleep(0.05)
    sock.write(_frame(b"{}"))  # RFC 6455 5.4: a continuation must come, not a new message
    assert await sock.close_code() == 1002
    sock.close()


@pytest.mark.parametrize("split", [0, 3, 7])
async def test_a_frame_begun_with_the_handshake_is_read_whole(node: Node, split: int) -> None:
    """The handshake and the start of a frame in one write that happens to end with a blank
    line: the frame is still read as one, however the rest arrives (its next bytes would pass
    for the head of a masked frame)."""
    payload = '{\r\n\r\n"é":1}'.encode()  # CR LF CR LF inside: the write ends as a request does
    frame = _frame(payload)
    cut = frame.index(b"\r\n\r\n") + 4
    sock = await RawSocket.open(node, first=frame[:cut])
    rest = frame[cut:] + _frame(b'{"messageType":"hello"}')
    sock.write(rest[:split])
    await asyncio.sleep(0.05)
    sock.write(rest[split:])
    assert (await sock.text())["code"] == codes.HELLO_FIRST  # the object, whole, before hello
    assert await sock.close_code() == codes.CLOSE_POLICY
    sock.close()

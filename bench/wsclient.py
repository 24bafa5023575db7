"""A lean device: the Tidings device protocol over a hand-rolled WebSocket client.

One :class:`Device` is an ``asyncio.Protocol`` (no task per connection), so one load-generator
process can hold thousands of them. It speaks just enough RFC 6455 for the gateway: the upgrade
handshake, masked client frames, unfragmented or fragmented text frames, ping / pong and close.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import orjson
from websockets.speedups import apply_mask

SUBPROTOCOL = "push-notification"
# In a broadcast round the generator reads first and answers later: what arrives is stamped
# and kept, and parsed, checked and acked once no read came for QUIET_S (at most HOLD_S after
# the first), HANDLE_BATCH at a time with a look at the sockets between batches. One core plays
# thousands of devices; without this, the acks of the devices read first delay the reading (and
# the timestamps) of the rest, which real devices do not do.
QUIET_S = 0.003
HOLD_S = 0.25
HANDLE_BATCH = 64


class _Masks:
    """Random 4-byte masking keys, drawn from the OS 4 KiB at a time (one syscall per 1,024
    frames instead of one per frame)."""

    def __init__(self) -> None:
        self.pool, self.at = b"", 0

    def next(self) -> bytes:
        if self.at >= len(self.pool):
            self.pool, self.at = os.urandom(4096), 0
        self.at += 4
        return self.pool[self.at - 4 : self.at]


_masks = _Masks()


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = _masks.next()
    return head + mask + apply_mask(payload, mask) if n else head + mask


class Fleet:
    """What all devices of one generator share: the app, counters and the current round."""

    def __init__(self, host: str, port: int, app: dict[str, str]) -> None:
        self.host, self.port, self.app = host, port, app
        self.devices: list[Device] = []
        self.payload = ""  # what every notification of the current round must carry
        self.counts: dict[str, int] = {}  # msg_id -> devices that got it this round
        self.last_rx: dict[str, float] = {}
        self.first_rx: dict[str, float] = {}
        self.waiting: tuple[str, asyncio.Future[None]] | None = None
        self.problems: dict[str, int] = {}
        self.armed_cpu = 0.0
        # "collect" mode (latency, drain): keep every message; see :meth:`collect`
        self.collecting = False
        self.collected = 0
        self.collect_target = 0
        self.collect_last = 0.0
        self.rx: dict[str, tuple[str, str, float]] = {}  # msg_id -> (reg_id, payload, time)
        self.collect_done: asyncio.Future[None] | None = None
        # broadcast rounds: (device, received at, bytes) read but not yet handled
        self.held: collections.deque[tuple[Device, float, bytes]] | None = None
        self.held_since = self.last_read = 0.0
        self.handler: asyncio.Handle | None = None
        self.handling = False  # handling what is held, a batch per event-loop turn
        self.rx_at = 0.0  # when what is being handled arrived

    def problem(self, kind: str) -> None:
        self.problems[kind] = self.problems.get(kind, 0) + 1

    def arm(self, payload: str) -> None:
        self.payload = payload
        self.armed_cpu = time.process_time()
        self.counts.clear()
        self.last_rx.clear()
        self.first_rx.clear()
        for d in self.devices:
            d.got.clear()
        self.held = collections.deque()

    def hold(self, dev: Device, data: bytes) -> None:
        now = time.monotonic()
        assert self.held is not None
        if not self.held:
            self.held_since = now
        self.held.append((dev, time.time(), data))
        self.last_read = now
        if self.handler is None:
            self.handler = asyncio.get_running_loop().call_later(QUIET_S, self.handle_held)

    def handle_held(self, force: bool = False) -> None:
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        if self.handler is not None:
            self.handler.cancel()
        self.handler = None
        held = self.held
        if not held:
            self.handling = False
            return
        if (
            not force
            and not self.handling
            and now - self.last_read < QUIET_S
            and now - self.held_since < HOLD_S
        ):
            self.handler = loop.call_later(QUIET_S, self.handle_held)
            return
        try:
            for _ in range(len(held) if force else min(len(held), HANDLE_BATCH)):
                dev, self.rx_at, data = held.popleft()
                dev.feed(data)
        finally:  # the rest is handled even when one device's data raised
            self.handling = bool(held)
            if held:  # the sockets are read before the next batch
                self.handler = loop.call_soon(self.handle_held)

    def collect(self, target: int) -> asyncio.Future[None]:
        """Accept any message from now on; the future is done after ``target`` of them."""
        self.collecting, self.collected, self.collect_target = True, 0, target
        self.rx.clear()
        self.collect_done = asyncio.get_running_loop().create_future()
        if target <= 0:
            self.collect_done.set_result(None)
        return self.collect_done

    def kept(self, dev: Device, msg_id: str, payload: str, now: float) -> None:
        self.collected += 1
        self.collect_last = now
        self.rx.setdefault(msg_id, (dev.reg_id, payload, now))
        done = self.collect_done
        if done is not None and self.collected >= self.collect_target and not done.done():
            done.set_result(None)

    def received(self, msg_id: str, now: float) -> None:
        count = self.counts[msg_id] = self.counts.get(msg_id, 0) + 1
        self.last_rx[msg_id] = now
        self.first_rx.setdefault(msg_id, now)
        fut = self.waiting[1] if self.waiting and self.waiting[0] == msg_id else None
        if fut is not None and count >= len(self.devices) and not fut.done():
            fut.set_result(None)

    async def wait(self, msg_id: str, timeout: float) -> dict[str, Any]:
        """Wait until every device got ``msg_id``; then check each got exactly that message."""
        fut = asyncio.get_running_loop().create_future()
        self.waiting = (msg_id, fut)
        if self.counts.get(msg_id, 0) >= len(self.devices):
            fut.set_result(None)
        try:
            await asyncio.wait_for(fut, timeout)
            timed_out = False
        except TimeoutError:
            timed_out = True
        self.waiting = None
        self.handle_held(force=True)
        self.held = None
        self.handling = False
        missing = sum(1 for d in self.devices if msg_id not in d.got)
        wrong = sum(1 for d in self.devices if set(d.got) - {msg_id})
        return {
            "event": "done",
            "id": msg_id,
            "timed_out": timed_out,
            "missing": missing,
            "wrong_id": wrong,
            "received": self.counts.get(msg_id, 0),
            "first": self.first_rx.get(msg_id),
            "last": self.last_rx.get(msg_id),
            "lost": sum(1 for d in self.devices if d.closed),
            "problems": self.problems,
            "cpu_s": time.process_time() - self.armed_cpu,
        }

    async def connect(
        self, n: int, parallel: int = 200, timeout: float = 120.0, uaids: list[str] | None = None
    ) -> float:
        """Connect and register ``n`` devices, ``parallel`` handshakes at a time (with the given
        uaids: devices coming back, which must get their old regIds)."""
        return await connect_many(
            self.host,
            self.port,
            n,
            lambda i: Device(self, uaids[i] if uaids else ""),
            lambda dev: dev.registered,
            self.devices,
            parallel,
            timeout,
            "devices failed to register",
        )

    def close(self) -> None:
        for d in self.devices:
            if d.transport is not None:
                d.transport.close()


class Device(asyncio.Protocol):
    def __init__(self, fleet: Fleet, uaid: str = "") -> None:
        self.fleet = fleet
        self.uaid = uaid
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.closed = False
        self.reg_id = ""
        self.registered: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.got: dict[str, int] = {}  # msg_id -> seq (or log offset), this round
        self._fragments: list[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        fleet = self.fleet
        transport.write(
            f"GET / HTTP/1.1\r\nHost: {fleet.host}:{fleet.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.registered.done():
            self.registered.set_exception(ConnectionError(f"connection lost: {exc}"))

    def send(self, obj: dict[str, Any], opcode: int = 0x1) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(frame(orjson.dumps(obj), opcode))

    def data_received(self, data: bytes) -> None:
        fleet = self.fleet
        if fleet.held is not None and self.reg_id:
            fleet.hold(self, data)
            return
        fleet.rx_at = time.time()
        self.feed(data)

    def feed(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[:end]).split(b"\r\n", 1)[0]
            del self.buf[: end + 4]
            if b" 101 " not in status + b" ":
                self.registered.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                return
            self.upgraded = True
            hello: dict[str, Any] = {"messageType": "hello", "use_webpush": True}
            if self.uaid:
                hello["uaid"] = self.uaid
            self.send(hello)
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, pos = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
            if b1 & 0x80:  # servers never mask; tolerate it anyway
                pos += 4
            if len(buf) < pos + n:
                return
            payload = bytes(buf[pos : pos + n])
            del buf[: pos + n]
            self._on_frame(b0 & 0x0F, bool(b0 & 0x80), payload)

    def _on_frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == 0x1 and fin:
            self._on_text(payload)
        elif opcode == 0x1:
            self._fragments = [payload]
        elif opcode == 0x0 and self._fragments is not None:
            self._fragments.append(payload)
            if fin:
                data, self._fragments = b"".join(self._fragments), None
                self._on_text(data)
        elif opcode == 0x9:
            if self.transport is not None:
                self.transport.write(frame(payload, 0xA))
        elif opcode == 0x8:
            self.fleet.problem("closed_by_server")
            if self.transport is not None:
                self.transport.write(frame(payload[:2], 0x8))
                self.transport.close()

    def _on_text(self, data: bytes) -> None:
        obj = orjson.loads(data)
        kind = obj.get("messageType")
        if kind == "notification":
            self._on_notification(obj)
        elif kind == "hello":
            app = self.fleet.app
            if obj.get("status") != 200 or not obj.get("uaid"):
                self.registered.set_exception(ConnectionError(f"hello refused: {obj}"))
                return
            if self.uaid and obj["uaid"] != self.uaid:
                self.registered.set_exception(ConnectionError("uaid not honoured"))
                return
            self.uaid = obj["uaid"]
            self.send(
                {
                    "messageType": "app_register",
                    "req": "1",
                    "app_id": app["app_id"],
                    "app_key": app["app_key"],
                    "package": app["package"],
                    "features": ["log"],  # as the SDK: broadcasts may come from the app log
                }
            )
        elif kind == "app_register":
            if obj.get("status") != 200 or obj.get("code") != 0 or not obj.get("reg_id"):
                self.registered.set_exception(ConnectionError(f"register refused: {obj}"))
                return
            self.reg_id = obj["reg_id"]
            self.registered.set_result(self.reg_id)
        else:
            self.fleet.problem(f"unexpected_{kind}")

    def _on_notification(self, obj: dict[str, Any]) -> None:
        fleet = self.fleet
        now = fleet.rx_at
        msg_id, seq, offset = obj.get("id"), obj.get("seq"), obj.get("log")
        message = obj.get("message") or {}
        # a stored message carries a positive seq (inbox) or a positive log offset (broadcast
        # sent from the app log), never both
        if offset is not None:
            key, seq = "log", offset
        else:
            key = "seq"
        if obj.get("reg_id") != self.reg_id or not isinstance(seq, int) or seq <= 0:
            fleet.problem("bad_envelope")
        elif fleet.collecting and isinstance(msg_id, str):
            if msg_id in self.got:
                fleet.problem("duplicate")
            else:
                self.got[msg_id] = seq
                fleet.kept(self, msg_id, str(message.get("payload")), now)
        elif not isinstance(msg_id, str) or message.get("payload") != fleet.payload:
            fleet.problem("bad_payload")
        elif msg_id in self.got:
            fleet.problem("duplicate")
        else:
            self.got[msg_id] = seq
            fleet.received(msg_id, now)
        if isinstance(seq, int) and seq > 0 and isinstance(msg_id, str) and not self.closed:
            assert self.transport is not None  # the ack, built as bytes: the generator's hot path
            self.transport.write(
                frame(
                    b'{"messageType":"ack","updates":[{"reg_id":"%s","%s":%d,"id":"%s"}]}'
                    % (self.reg_id.encode(), key.encode(), seq, msg_id.encode())
                )
            )


P = TypeVar("P", bound=asyncio.Protocol)


async def connect_many(
    host: str,
    port: int,
    n: int,
    make: Callable[[int], P],
    ready: Callable[[P], Awaitable[Any]],
    into: list[P],
    parallel: int,
    timeout: float,
    failure: str,
) -> float:
    """Open ``n`` client connections, ``parallel`` at a time, each done when ``ready`` is; append
    each to ``into`` as it is; the seconds it took. Raises if any failed (``failure`` says what)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(parallel)
    started = time.monotonic()
    deadline = started + timeout

    async def one(i: int) -> None:
        async with gate:
            proto = make(i)
            await loop.create_connection(lambda: proto, host, port)
            await asyncio.wait_for(ready(proto), max(1.0, deadline - time.monotonic()))
            into.append(proto)

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} {failure}: {failed[0]!r}")
    return time.monotonic() - started

"""One device connection: a thin pump between a socket, websockets' sans-I/O protocol, the
device session and the hub. No task per connection; all work happens in socket callbacks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from websockets.frames import Frame, Opcode

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the wheel ships the C speedups
    from websockets.utils import apply_mask
from websockets.http11 import Request
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from tidings.protocol import codes
from tidings.protocol.session import DeviceSession, State

if TYPE_CHECKING:
    from tidings.gateway.server import Gateway

log = logging.getLogger("tidings.gateway")

PUSH = Subprotocol("push-notification")
# the states the hot paths test, as plain names (an enum member lookup costs ~45 ns)
_WS_OPEN = WsState.OPEN
_CLOSED = State.CLOSED


def _select_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Echo Mozilla's subprotocol when offered; clients that offer none are welcome too."""
    return PUSH if PUSH in offered else None


def _text_frame(payload: bytes) -> bytes:
    """An unfragmented, unmasked WebSocket text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


class Connection(asyncio.Protocol):
    """asyncio protocol for one device socket (see :class:`tidings.gateway.server.Gateway`)."""

    __slots__ = (
        "_buf",
        "_fast",
        "_fragmented",
        "_fragments",
        "closed",
        "connected_at",
        "gateway",
        "last_rx",
        "pinged",
        "session",
        "transport",
        "ws",
    )

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.ws = ServerProtocol(
            select_subprotocol=_select_subprotocol, max_size=gateway.max_frame_bytes
        )
        self.session = DeviceSession()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_rx = self.connected_at = time.monotonic()
        self.pinged = False
        self._fragments: list[bytes] | None = None
        self._fast = False  # True once frames are split here (see _split_frames)
        self._fragmented = False  # a fragmented message is under way (split here)
        self._buf = b""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.gateway.connections.add(self)
        self.gateway.greeting.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.pinged = False
        if self._fast:
            self._split_frames(data)
            return
        handshake = self.ws.state is WsState.CONNECTING
        if handshake:  # kept until the request is whole, to see where it ends
            self._buf += data
        self.ws.receive_data(data)
        self._process()
        if handshake and self.ws.state is not WsState.CONNECTING:
            # Frames are split here from now on if the request ended exactly where the bytes
            # so far end (a GET has no body: it ends at its first blank line): websockets'
            # parser then stands at a frame boundary and only ever gets whole frames.
            request, self._buf = self._buf, b""
            if self.ws.state is WsState.OPEN and request.find(b"\r\n\r\n") == len(request) - 4:
                self._fast = True

    def _split_frames(self, data: bytes) -> None:
        """Handle whole masked text frames directly (the hot path: acks); hand every other
        frame, whole, to websockets (control frames, fragments, binary, oversize, close)."""
        buf = self._buf + data if self._buf else data
        limit = self.gateway.max_frame_bytes
        pos, end = 0, len(buf)
        slow: list[bytes] = []
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            size, head = b1 & 0x7F, 2
            if size == 126:
                if end - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size > limit or not b1 & 0x80:  # oversize or unmasked: websockets fails it
                slow.append(buf[pos:])
                pos = end
                self._fast = False
                break
            stop = pos + head + 4 + size
            if stop > end:
                break
            # FIN + text, with no fragmented message under way (websockets fails a text frame
            # inside one, as RFC 6455 section 5.4 asks)
            if b0 == 0x81 and not slow and not self._fragmented:
                mask = buf[pos + head : pos + head + 4]
                self._text(apply_mask(buf[pos + head + 4 : stop], mask))
            else:
                slow.append(buf[pos:stop])
                opcode = b0 & 0x0F
                if opcode in (1, 2) and not b0 & 0x80:  # the first of a fragmented message
                    self._fragmented = True
                elif opcode == 0 and b0 & 0x80:  # its last
                    self._fragmented = False
            pos = stop
        self._buf = buf[pos:] if pos < end else b""
        if slow:
            self.ws.receive_data(b"".join(slow))
            self._process()

    def eof_received(self) -> bool:
        self.ws.receive_eof()
        self._process()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gateway.connections.discard(self)
        self.gateway.greeting.discard(self)
        self.gateway.hub.detach(self)

    def pause_writing(self) -> None:  # the buffer cap in flush() does the flow control
        pass

    def resume_writing(self) -> None:
        pass

    # pump

    def _process(self) -> None:
        for event in self.ws.events_received():
            if isinstance(event, Request):
                response = self.ws.accept(event)
                self.ws.send_response(response)
            elif isinstance(event, Frame):
                self._on_frame(event)
        self._write()

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragments = [bytes(frame.data)] if frame.opcode is Opcode.TEXT else None
                if frame.opcode is Opcode.BINARY:
                    self._binary()
                return
            if frame.opcode is Opcode.BINARY:
                self._binary()
                return
            self._text(bytes(frame.data))
        elif frame.opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._text(data)

    def _binary(self) -> None:
        self.session.receive_binary()
        self.flush()

    def _text(self, data: bytes) -> None:
        session = self.session
        events = session.receive_text(data)  # JSON parsing checks the UTF-8
        if session.has_output():  # most frames (acks) answer nothing
            self.flush()
        if events:
            self.gateway.hub.handle(self, events)

    def flush(self) -> None:
        """Write the session's frames; cut off a device whose socket buffer is over the cap."""
        session = self.session
        frames = session.frames_to_send()
        # Text frames are framed here, not by websockets: a server frame is a 2-10 byte header
        # and the bytes (no mask, no extension negotiated), and one write per flush is cheaper.
        if len(frames) == 1:
            sent = self._send_framed(_text_frame(frames[0]))
        else:
            sent = self._send_framed(b"".join([_text_frame(f) for f in frames]))
        if sent and session.state is _CLOSED and session.close_code is not None:
            self.ws.send_close(session.close_code, session.close_reason)
            self._write()

    def send_text(self, payload: bytes) -> None:
        """One text frame made elsewhere (a fan-out's, ``session.log_frame``), as :meth:`flush`
        would send it, without the session's queue when nothing waits there (the common case)."""
        session = self.session
        if session.has_output():  # behind what waits (or with the close frame)
            session.queue(payload)
            self.flush()
        else:
            self._send_framed(_text_frame(payload))

    def _send_framed(self, data: bytes) -> bool:
        """Write framed bytes (if any) behind the control frames websockets has queued; False
        when the connection is not open or the write put it over the buffer cap (cut off)."""
        transport, ws = self.transport, self.ws
        if self.closed or transport is None or ws.state is not _WS_OPEN:
            return False
        if ws.writes:  # control frames queued by websockets (pongs) go first
            self._write()
        if data:
            transport.write(data)
            if transport.get_write_buffer_size() > self.gateway.send_buffer_bytes:
                self._cut_off()
                return False
        return True

    def _cut_off(self) -> None:
        log.info("device cut off: send buffer over %d bytes", self.gateway.send_buffer_bytes)
        self.gateway.hub.stats["slow_disconnects"] += 1
        self.abort()

    def _write(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if transport.get_write_buffer_size() > self.gateway.send_buffer_bytes:
            self._cut_off()
            return
        if self.ws.close_expected() or self.ws.state is WsState.CLOSED:
            transport.close()
            self.closed = True

    def close(self, code: int, reason: str) -> None:
        self.session.close(code, reason)
        self.flush()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # keepalive (called by the gateway's single sweeper)

    def check_hello(self, now: float, hello_within: float) -> None:
        """Close a connection that sent no hello in time; forget it here once it did."""
        if self.session.state is not State.AWAIT_HELLO or self.closed:
            self.gateway.greeting.discard(self)
        elif now - self.connected_at > hello_within:
            self.gateway.greeting.discard(self)
            self.close(codes.CLOSE_IDLE, "no hello")
            self.abort()

    def tick(self, now: float, ping_after: float, drop_after: float) -> None:
        idle = now - self.last_rx
        if idle > ping_after + drop_after and self.pinged:
            self.abort()
        elif idle > ping_after and not self.pinged and self.ws.state is WsState.OPEN:
            self.pinged = True
            self.ws.send_ping(b"")
            self._write()

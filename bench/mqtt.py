"""Mosquitto side by side: the broker as a subprocess, and a lean MQTT 3.1.1 subscriber fleet.

The client speaks just what the fan-out scenario needs (CONNECT, SUBSCRIBE and PUBLISH at QoS 0,
or at QoS 1 with PUBACKs for the side by side with acks, DISCONNECT); each subscriber is an
``asyncio.Protocol`` like the Tidings devices in ``bench/wsclient.py``, and :class:`MqttFleet`
obeys the same ``arm`` / ``wait`` commands as ``wsclient.Fleet``, so both servers are driven by
the same generator design.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from bench import machine
from bench.server import Process
from bench.wsclient import connect_many

MOSQUITTO = "/usr/sbin/mosquitto"
TOPIC = "bench/all"

# --- packets -----------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


def connect_packet(client_id: str, keepalive: int = 0) -> bytes:
    # protocol "MQTT" level 4 (3.1.1), flags: clean session; keepalive 0 = no pings needed
    return packet(
        0x10, _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive) + _str(client_id)
    )


def subscribe_packet(packet_id: int, topic: str, qos: int = 0) -> bytes:
    return packet(0x82, struct.pack("!H", packet_id) + _str(topic) + bytes([qos]))


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    if qos == 0:
        return packet(0x30, _str(topic) + payload)  # no packet id
    return packet(0x30 | qos << 1, _str(topic) + struct.pack("!H", packet_id) + payload)


def puback_packet(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


DISCONNECT = b"\xe0\x00"


def split(buf: bytearray) -> list[tuple[int, bytes]]:
    """Remove and return the complete packets at the head of ``buf``: (first byte, body)."""
    out = []
    while len(buf) >= 2:
        n, mult, pos = 0, 1, 1
        while True:
            if pos >= len(buf) or pos > 4:
                return out
            byte = buf[pos]
            n += (byte & 0x7F) * mult
            mult *= 128
            pos += 1
            if not byte & 0x80:
                break
        if len(buf) < pos + n:
            return out
        out.append((buf[0], bytes(buf[pos : pos + n])))
        del buf[: pos + n]
    return out


# --- subscribers ------------------------------------------------------------------------------


class MqttFleet:
    """N subscribers of one generator process; same round protocol as ``wsclient.Fleet``."""

    def __init__(self, host: str, port: int, topic: str = TOPIC, qos: int = 0) -> None:
        self.host, self.port, self.topic, self.qos = host, port, topic, qos
        self.devices: list[Subscriber] = []
        self.expected = b""
        self.count = 0
        self.first_rx: float | None = None
        self.last_rx: float | None = None
        self.waiting: asyncio.Future[None] | None = None
        self.problems: dict[str, int] = {}
        self.armed_cpu = 0.0

    def problem(self, kind: str) -> None:
        self.problems[kind] = self.problems.get(kind, 0) + 1

    def arm(self, payload: str) -> None:
        """Expect ``payload`` (it starts with the round's token, its message id)."""
        self.expected = payload.encode()
        self.count, self.first_rx, self.last_rx = 0, None, None
        self.armed_cpu = time.process_time()
        for d in self.devices:
            d.got = 0

    def received(self, sub: Subscriber, payload: bytes, now: float) -> None:
        if payload != self.expected:
            self.problem("bad_payload")
            return
        sub.got += 1
        if sub.got > 1:
            self.problem("duplicate")
            return
        self.count += 1
        self.last_rx = now
        if self.first_rx is None:
            self.first_rx = now
        if self.count >= len(self.devices) and self.waiting and not self.waiting.done():
            self.waiting.set_result(None)

    async def wait(self, token: str, timeout: float) -> dict[str, Any]:
        fut = self.waiting = asyncio.get_running_loop().create_future()
        if not self.expected.startswith(token.encode()):
            self.problem("not_armed")
        if self.count >= len(self.devices):
            fut.set_result(None)
        try:
            await asyncio.wait_for(fut, timeout)
            timed_out = False
        except TimeoutError:
            timed_out = True
        self.waiting = None
        return {
            "event": "done",
            "id": token,
            "timed_out": timed_out,
            "missing": sum(1 for d in self.devices if d.got == 0),
            "wrong_id": 0,  # a wrong payload is counted in problems["bad_payload"]
            "received": self.count,
            "first": self.first_rx,
            "last": self.last_rx,
            "lost": sum(1 for d in self.devices if d.closed),
            "problems": self.problems,
            "cpu_s": time.process_time() - self.armed_cpu,
        }

    async def connect(self, n: int, parallel: int = 200, timeout: float = 120.0) -> float:
        """Connect ``n`` clients and subscribe each to the topic, ``parallel`` at a time."""
        prefix = f"b{os.getpid()}-"
        return await connect_many(
            self.host,
            self.port,
            n,
            lambda i: Subscriber(self, f"{prefix}{i}"),
            lambda sub: sub.ready,
            self.devices,
            parallel,
            timeout,
            "subscribers failed",
        )

    def close(self) -> None:
        for d in self.devices:
            if d.transport is not None and not d.closed:
                d.transport.write(DISCONNECT)
                d.transport.close()


class Subscriber(asyncio.Protocol):
    def __init__(self, fleet: MqttFleet, client_id: str) -> None:
        self.fleet, self.client_id = fleet, client_id
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False
        self.got = 0
        self.reg_id = ""  # the generator's "ready" line lists regIds of Tidings devices only
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(connect_packet(self.client_id))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        now = time.time()
        for first, body in split(self.buf):
            kind = first >> 4
            if kind == 3:  # PUBLISH: topic, the packet id at QoS 1 (then PUBACK it), payload
                (tlen,) = struct.unpack_from("!H", body)
                if first & 0x06:
                    (packet_id,) = struct.unpack_from("!H", body, 2 + tlen)
                    self.fleet.received(self, body[4 + tlen :], now)
                    if self.transport is not None:
                        self.transport.write(puback_packet(packet_id))
                else:
                    self.fleet.received(self, body[2 + tlen :], now)
            elif kind == 2:  # CONNACK
                if body[1:2] != b"\x00":
                    self.ready.set_exception(ConnectionError(f"CONNACK refused: {body!r}"))
                elif self.transport is not None:
                    self.transport.write(subscribe_packet(1, self.fleet.topic, self.fleet.qos))
            elif kind == 9:  # SUBACK: the QoS granted
                if body[2:3] != bytes([self.fleet.qos]):
                    self.ready.set_exception(ConnectionError(f"SUBACK refused: {body!r}"))
                elif not self.ready.done():
                    self.ready.set_result(None)
            else:
                self.fleet.problem(f"unexpected_{kind}")


async def publish(host: str, port: int, payload: str, topic: str = TOPIC, qos: int = 0) -> float:
    """Connect a publisher, send one message (at QoS 1: wait for its PUBACK); return the time just
    before the write."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(connect_packet(f"pub-{os.getpid()}-{time.monotonic_ns()}"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readexactly(4), 10)
        if head[0] >> 4 != 2 or head[3] != 0:
            raise RuntimeError(f"publisher CONNACK refused: {head!r}")
        sent = time.time()
        writer.write(publish_packet(topic, payload.encode(), qos))
        if qos:
            ack = await asyncio.wait_for(reader.readexactly(4), 10)
            if ack != puback_packet(1):
                raise RuntimeError(f"publisher PUBACK expected: {ack!r}")
        writer.write(DISCONNECT)
        await writer.drain()
        return sent
    finally:
        writer.close()


# --- the broker ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto(Process):
    """Our own broker on a free 127.0.0.1 port, pinned like the Tidings server."""

    CONFIG = (
        "listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "allow_duplicate_messages true\n"
        "max_queued_messages 1000000\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
    )

    def __init__(self) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="tidings-bench-mosquitto-")))
        self.port = free_port()

    def start(self, timeout: float = 10.0) -> None:
        conf = self.dir / "mosquitto.conf"
        conf.write_text(self.CONFIG.format(port=self.port))
        with open(self.dir / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                preexec_fn=machine.server_preexec,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        log = (self.dir / "stderr.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"mosquitto did not start:\n{log}")

    def version(self) -> str:
        out = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).splitlines()[:1]
        return first[0] if first else "mosquitto"

    def stop(self) -> None:
        self.terminate()
        log = self.dir / "stderr.log"
        if log.exists():
            self.errors = log.read_text(errors="replace").splitlines()[-20:]
        shutil.rmtree(self.dir, ignore_errors=True)

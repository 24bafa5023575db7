"""Load-generator processes: ``python -m bench.loadgen devices|http ...``.

``devices`` connects and registers N devices, prints ``{"event": "ready", ...}`` and then obeys
JSON commands on stdin, one a line: ``arm`` (start a round: the payload to expect), ``wait``
(until every device got a message id; answer how it went) and ``close``.

``http`` fires Mi Push ``/v3/message/regid`` sends over keep-alive connections for a fixed time
and prints one JSON line with the counts and latencies of the responses in the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench.wsclient import Fleet

IDLE_LIMIT_S = 900.0  # a device generator left without commands this long exits


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --- devices ------------------------------------------------------------------------------------


async def _stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def devices(args: argparse.Namespace) -> None:
    url = urlsplit(args.gateway)
    fleet = Fleet(url.hostname or "127.0.0.1", url.port or 80, json.loads(args.app))
    took = await fleet.connect(args.count, timeout=args.timeout)
    emit(
        {
            "event": "ready",
            "count": len(fleet.devices),
            "connect_s": took,
            "reg_ids": [d.reg_id for d in fleet.devices] if args.emit_regids else [],
        }
    )
    commands = await _stdin()
    for _ in range(10_000):  # bounded: a handful of commands per round
        try:
            line = await asyncio.wait_for(commands.readline(), IDLE_LIMIT_S)
        except TimeoutError:
            break
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "arm":
            fleet.arm(cmd["payload"])
            emit({"event": "armed"})
        elif cmd["cmd"] == "wait":
            emit(await fleet.wait(cmd["id"], float(cmd["timeout"])))
        elif cmd["cmd"] == "close":
            break
    fleet.close()
    await asyncio.sleep(0.1)  # let the close frames go out


# --- http ---------------------------------------------------------------------------------------


class Tally:
    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []
        self.cpu = [0.0, 0.0]  # process CPU time at the window's start and end

    def add(self, began: float, done: float, error: str | None) -> None:
        if done < self.start:
            self.cpu[0] = time.process_time()
        elif done <= self.end:
            self.cpu[1] = time.process_time()
        if not self.start <= done <= self.end:
            return
        if error is None:
            self.ok += 1
            self.latencies.append(done - began)
        else:
            self.errors[error] = self.errors.get(error, 0) + 1


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _worker(args: argparse.Namespace, bodies: list[bytes], first: int, tally: Tally) -> None:
    url = urlsplit(args.api)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /v3/message/regid HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: key={args.secret}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
    ).encode()
    i = first
    try:
        while time.monotonic() < tally.end:
            body = bodies[i % len(bodies)]
            i += args.concurrency
            began = time.monotonic()
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status, data = await asyncio.wait_for(_read_response(reader), args.timeout)
            error = None
            if status != 200:
                error = f"http_{status}"
            else:
                code = json.loads(data).get("code")
                error = None if code == 0 else f"code_{code}"
            tally.add(began, time.monotonic(), error)
    finally:
        writer.close()


async def http(args: argparse.Namespace) -> None:
    with open(args.regids_file) as f:
        reg_ids: list[str] = json.load(f)
    k = args.targets
    groups = [reg_ids[i : i + k] for i in range(0, len(reg_ids) - k + 1, k)] or [reg_ids]
    common = {
        "restricted_package_name": args.package,
        "title": "Bench",
        "description": "benchmark message",
        "payload": "x" * args.payload_bytes,
    }
    bodies = [urlencode({**common, "registration_id": ",".join(g)}).encode() for g in groups]
    start = time.monotonic() + args.warmup
    tally = Tally(start, start + args.duration)
    emit({"event": "started", "warmup": args.warmup})
    results = await asyncio.gather(
        *(_worker(args, bodies, i, tally) for i in range(args.concurrency)),
        return_exceptions=True,
    )
    failed = [repr(r) for r in results if isinstance(r, BaseException)]
    lat = sorted(tally.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0

    emit(
        {
            "event": "done",
            "ok": tally.ok,
            "errors": tally.errors,
            "duration": args.duration,
            "targets": k,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "worker_failures": failed,
            "client_cpu_busy": (tally.cpu[1] - tally.cpu[0]) / args.duration,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("devices")
    d.add_argument("--gateway", required=True)
    d.add_argument("--app", required=True, help="JSON with app_id, app_key, package")
    d.add_argument("--count", type=int, required=True)
    d.add_argument("--emit-regids", action="store_true")
    d.add_argument("--timeout", type=float, default=120.0)
    h = sub.add_parser("http")
    h.add_argument("--api", required=True)
    h.add_argument("--secret", required=True)
    h.add_argument("--package", required=True)
    h.add_argument("--regids-file", required=True)
    h.add_argument("--targets", type=int, default=1)
    h.add_argument("--concurrency", type=int, default=64)
    h.add_argument("--warmup", type=float, default=1.0)
    h.add_argument("--duration", type=float, default=10.0)
    h.add_argument("--payload-bytes", type=int, default=64)
    h.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency of tidings
        runner = asyncio.run
    runner(devices(args) if args.mode == "devices" else http(args))


if __name__ == "__main__":
    main()

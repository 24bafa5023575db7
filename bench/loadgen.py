"""Load-generator processes: ``python -m bench.loadgen devices|mqtt|http|latency|drain ...``.

``devices`` connects and registers N devices, prints ``{"event": "ready", ...}`` and then obeys
JSON commands on stdin, one a line: ``arm`` (start a round: the payload to expect), ``wait``
(until every device got a message id; answer how it went) and ``close``. ``mqtt`` does the same
with N MQTT subscribers of a Mosquitto broker (the round's token is its message id).

``latency`` holds N devices and, in the same process (one clock), sends unicasts to them at a
steady rate; it prints the send → receive latencies. ``drain`` brings back devices that were
registered before (by uaid), collects their stored messages and checks each got exactly the ids
it should.

``http`` fires Mi Push ``/v3/message/regid`` sends over keep-alive connections for a fixed time
and prints one JSON line with the counts and latencies of the responses in the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench.mqtt import MqttFleet
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
    fleet: Fleet | MqttFleet
    if args.mode == "mqtt":
        fleet = MqttFleet("127.0.0.1", args.port, qos=args.qos)
    else:
        url = urlsplit(args.gateway)
        fleet = Fleet(url.hostname or "127.0.0.1", url.port or 80, json.loads(args.app))
    took = await fleet.connect(args.count, timeout=args.timeout)
    emit(
        {
            "event": "ready",
            "count": len(fleet.devices),
            "connect_s": took,
            "reg_ids": [d.reg_id for d in fleet.devices] if args.emit_regids else [],
            "uaids": [getattr(d, "uaid", "") for d in fleet.devices] if args.emit_regids else [],
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


# --- latency ------------------------------------------------------------------------------------


def _pct(values: list[float], p: float) -> float | None:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))] if s else None


async def latency(args: argparse.Namespace) -> None:
    """Unicasts at ``--rate`` per second for ``--duration`` s, round-robin over N devices."""
    url = urlsplit(args.gateway)
    fleet = Fleet(url.hostname or "127.0.0.1", url.port or 80, json.loads(args.app))
    await fleet.connect(args.count, timeout=args.timeout)
    emit({"event": "connected", "count": len(fleet.devices)})
    api = urlsplit(args.api)
    host, port = api.hostname or "127.0.0.1", api.port or 80
    total = int(args.rate * (args.warmup + args.duration))  # the warm-up's are checked, not timed
    head = (
        f"POST /v3/message/regid HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: key={args.secret}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
    ).encode()
    sent: dict[str, tuple[str, str, float]] = {}  # msg_id -> (reg_id, payload, send time)
    errors: dict[str, int] = {}
    lag: list[float] = []  # how late each request went out against its schedule
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    arrived = fleet.collect(total)
    cpu0 = time.process_time()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(total):
                i, due = await queue.get()
                if i < 0:
                    return
                dev = fleet.devices[i % len(fleet.devices)]
                payload = f"lat-{i}"
                body = urlencode(
                    {
                        "restricted_package_name": json.loads(args.app)["package"],
                        "title": "Bench",
                        "description": "latency",
                        "payload": payload,
                        "registration_id": dev.reg_id,
                        "extra.channel_id": "bench",  # private category: no daily quota
                    }
                ).encode()
                t = time.time()
                lag.append(t - due)
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                status, data = await asyncio.wait_for(_read_response(reader), args.timeout)
                answer = json.loads(data) if status == 200 else {}
                if answer.get("code") == 0:
                    sent[answer["data"]["id"]] = (dev.reg_id, payload, t)
                else:
                    key = f"http_{status}" if status != 200 else f"code_{answer.get('code')}"
                    errors[key] = errors.get(key, 0) + 1
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
    t0 = time.time() + 0.1
    for i in range(total):  # open loop: request i is due at t0 + i / rate
        due = t0 + i / args.rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait((-1, 0.0))
    failures = [repr(r) for r in await asyncio.gather(*workers, return_exceptions=True) if r]
    send_s = time.time() - t0
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(arrived, args.timeout)
    lat, wrong, received = [], 0, 0
    by_second: dict[int, list[float]] = {}  # where in the run the slow ones were
    for msg_id, (reg_id, payload, t) in sent.items():
        got = fleet.rx.get(msg_id)
        if got is None:
            continue
        if got[0] != reg_id or got[1] != payload:
            wrong += 1
        else:
            received += 1
            ms = (got[2] - t) * 1000
            by_second.setdefault(int(t - t0), []).append(ms)
            if t - t0 >= args.warmup:
                lat.append(ms)
    emit(
        {
            "event": "done",
            "requested": total,
            "accepted": len(sent),
            "received": received,
            "timed": len(lat),
            "missing": len(sent) - sum(1 for m in sent if m in fleet.rx),
            "unexpected": sum(1 for m in fleet.rx if m not in sent),
            "wrong": wrong,
            "errors": errors,
            "worker_failures": failures,
            "problems": fleet.problems,
            "send_s": send_s,
            "achieved_rate": len(sent) / send_s if send_s > 0 else 0.0,
            "p50_ms": _pct(lat, 0.50),
            "p99_ms": _pct(lat, 0.99),
            "max_ms": max(lat) if lat else None,
            "schedule_lag_p99_ms": (_pct(lag, 0.99) or 0.0) * 1000,
            "p99_ms_by_second": [_pct(v, 0.99) for _, v in sorted(by_second.items())],
            "max_ms_by_second": [max(v) for _, v in sorted(by_second.items())],
            "client_cpu_busy": (time.process_time() - cpu0) / max(send_s, 1e-9),
        }
    )
    fleet.close()
    await asyncio.sleep(0.1)


# --- drain --------------------------------------------------------------------------------------


async def drain(args: argparse.Namespace) -> None:
    """Reconnect registered devices; collect until each has every id in ``--ids-file``."""
    with open(args.devices_file) as f:
        known: list[dict[str, str]] = json.load(f)
    with open(args.ids_file) as f:
        ids: set[str] = set(json.load(f))
    url = urlsplit(args.gateway)
    fleet = Fleet(url.hostname or "127.0.0.1", url.port or 80, json.loads(args.app))
    arrived = fleet.collect(len(known) * len(ids))
    began = time.time()
    took = await fleet.connect(len(known), timeout=args.timeout, uaids=[d["uaid"] for d in known])
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(arrived, args.timeout)
    expected = {d["uaid"]: d["reg_id"] for d in known}
    first = min((t for _, _, t in fleet.rx.values()), default=None)
    emit(
        {
            "event": "done",
            "devices": len(fleet.devices),
            "regid_changed": sum(1 for d in fleet.devices if expected.get(d.uaid) != d.reg_id),
            "received": fleet.collected,
            "expected": len(known) * len(ids),
            "exact_devices": sum(1 for d in fleet.devices if set(d.got) == ids),
            "missing": sum(len(ids - set(d.got)) for d in fleet.devices),
            "unexpected": sum(len(set(d.got) - ids) for d in fleet.devices),
            "problems": fleet.problems,
            "began": began,
            "connected_s": took,
            "first": first,
            "last": fleet.collect_last or None,
            "lost": sum(1 for d in fleet.devices if d.closed),
        }
    )
    # stay connected (acks already sent) until told to close, so the server sees no churn
    commands = await _stdin()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(commands.readline(), IDLE_LIMIT_S)
    fleet.close()
    await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("devices")
    d.add_argument("--gateway", required=True)
    d.add_argument("--app", required=True, help="JSON with app_id, app_key, package")
    d.add_argument("--count", type=int, required=True)
    d.add_argument("--emit-regids", action="store_true")
    d.add_argument("--timeout", type=float, default=120.0)
    m = sub.add_parser("mqtt")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--qos", type=int, choices=(0, 1), default=0)
    m.add_argument("--count", type=int, required=True)
    m.add_argument("--emit-regids", action="store_true")
    m.add_argument("--timeout", type=float, default=120.0)
    lt = sub.add_parser("latency")
    lt.add_argument("--gateway", required=True)
    lt.add_argument("--api", required=True)
    lt.add_argument("--app", required=True)
    lt.add_argument("--secret", required=True)
    lt.add_argument("--count", type=int, default=1000)
    lt.add_argument("--rate", type=float, default=1000.0)
    lt.add_argument("--duration", type=float, default=10.0)
    lt.add_argument("--warmup", type=float, default=2.0)
    lt.add_argument("--concurrency", type=int, default=32)
    lt.add_argument("--timeout", type=float, default=60.0)
    dr = sub.add_parser("drain")
    dr.add_argument("--gateway", required=True)
    dr.add_argument("--app", required=True)
    dr.add_argument("--devices-file", required=True)
    dr.add_argument("--ids-file", required=True)
    dr.add_argument("--timeout", type=float, default=120.0)
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
    modes = {"devices": devices, "mqtt": devices, "http": http, "latency": latency, "drain": drain}
    runner(modes[args.mode](args))


if __name__ == "__main__":
    main()

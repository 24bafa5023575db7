"""The scenarios. Each starts its own server; load generators run as separate processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import machine
from bench.mqtt import Mosquitto, publish
from bench.server import Server
from tidings.compliance.regions import DEFAULT_REGION
from tidings.residency import sqlite_path

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Config:
    unicast_devices: int = 1000
    fanout_targets: int = 1000
    http_concurrency: int = 64
    fanout_concurrency: int = 8
    warmup_s: float = 2.0
    duration_s: float = 10.0
    # fan-out side by side (each size also gives memory per idle connection)
    broadcast_sizes: tuple[int, ...] = (1000, 5000, 10000, 19000)
    mosquitto: bool = True
    rounds: int = 5
    memory_sizes: tuple[int, ...] = ()  # stand-alone memory runs; the broadcast runs measure it
    round_timeout_s: float = 60.0
    per_generator: int = 5000  # connections per generator process (open-file limit 20,000)
    latency_devices: int = 1000
    latency_rate: float = 1000.0
    latency_s: float = 10.0
    drain_devices: int = 1000
    drain_per_device: int = 100
    million_devices: int = 1_000_000
    million_online: int = 10
    million_sends: int = 7


FULL = Config()
QUICK = Config(
    warmup_s=0.5,
    duration_s=2.0,
    broadcast_sizes=(200,),
    rounds=2,
    round_timeout_s=20.0,
    latency_devices=100,
    latency_rate=200.0,
    latency_s=2.0,
    drain_devices=50,
    drain_per_device=20,
    million_devices=20_000,
    million_online=5,
    million_sends=3,
)


class Gen:
    """One load-generator process, spoken to in JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str) -> Gen:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loadgen",
            *args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
            preexec_fn=machine.loadgen_preexec,
        )
        return cls(proc)

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            await self.proc.wait()
            raise RuntimeError(f"load generator exited ({self.proc.returncode}) without answer")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.read(timeout)

    async def close(self, timeout: float = 15.0) -> None:
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):  # it may have exited already
                self.proc.stdin.write(b'{"cmd": "close"}\n')
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _app_arg(app: dict[str, str]) -> str:
    return json.dumps({k: app[k] for k in ("app_id", "app_key", "package")})


@contextlib.asynccontextmanager
async def devices(
    srv: Server | Mosquitto,
    n: int,
    emit_regids: bool = False,
    per_generator: int = 5000,
    qos: int = 0,
) -> AsyncIterator[tuple[list[Gen], list[dict[str, Any]]]]:
    """``n`` connected, registered devices (or MQTT subscribers, for a Mosquitto) spread over
    generator processes of at most ``per_generator`` connections each."""
    procs = -(-n // per_generator)
    counts = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    extra = ["--emit-regids"] if emit_regids else []
    gens: list[Gen] = []
    try:
        for c in counts:
            if isinstance(srv, Mosquitto):
                mqtt_args = ["--port", str(srv.port), "--count", str(c), "--qos", str(qos)]
                gens.append(await Gen.start("mqtt", *mqtt_args))
                continue
            args = ["--gateway", srv.gateway_url, f"--app={_app_arg(srv.app)}", "--count", str(c)]
            gens.append(await Gen.start("devices", *args, *extra))
        readies = await asyncio.gather(*(g.read(timeout=180) for g in gens))
        for ready, count in zip(readies, counts, strict=True):
            if ready.get("event") != "ready" or ready["count"] != count:
                raise RuntimeError(f"devices not ready: {ready}")
        yield gens, readies
    finally:
        for g in gens:
            await g.close()


async def unicast(cfg: Config, targets: int) -> dict[str, Any]:
    """Accepted /v3/message/regid sends per second (devices registered, then offline)."""
    concurrency = cfg.http_concurrency if targets == 1 else cfg.fanout_concurrency
    with Server(f"unicast{targets}") as srv:
        srv.create_app()
        srv.start()
        async with devices(srv, max(cfg.unicast_devices, targets), emit_regids=True) as (_, ready):
            reg_ids = [r for one in ready for r in one["reg_ids"]]
        regids_file = srv.dir / "regids.json"
        regids_file.write_text(json.dumps(reg_ids))
        await asyncio.to_thread(srv.wait_idle)
        http = await Gen.start(
            "http", "--api", srv.api_url, f"--secret={srv.app['app_secret']}",
            "--package", srv.app["package"], "--regids-file", str(regids_file),
            "--targets", str(targets), "--concurrency", str(concurrency),
            "--warmup", str(cfg.warmup_s), "--duration", str(cfg.duration_s),
        )  # fmt: skip
        try:
            await http.read(timeout=30)  # started
            await asyncio.sleep(cfg.warmup_s)
            cpu0 = srv.cpu_seconds()
            with profiled(srv.pid, http.proc.pid):
                await asyncio.sleep(cfg.duration_s)
            cpu = srv.cpu_seconds() - cpu0
            res = await http.read(timeout=cfg.duration_s + 60)
        finally:
            await http.close()
        srv.stop()
    rps = res["ok"] / cfg.duration_s
    return {
        "scenario": "unicast",
        "targets_per_request": targets,
        "devices": len(reg_ids),
        "concurrency": concurrency,
        "duration_s": cfg.duration_s,
        "requests_ok": res["ok"],
        "requests_per_s": rps,
        "targets_per_s": rps * targets,
        "errors": res["errors"],
        "worker_failures": res["worker_failures"],
        "p50_ms": res["p50_ms"],
        "p99_ms": res["p99_ms"],
        "server_cpu_busy": cpu / cfg.duration_s,
        "loadgen_cpu_busy": res["client_cpu_busy"],
        "server_cpu_ms_per_request": cpu * 1000 / res["ok"] if res["ok"] else None,
        "server_log_problems": srv.errors[:20],
    }


def _broadcaster(
    client: httpx.AsyncClient, package: str, channel: str, description: str
) -> Callable[[str], Awaitable[tuple[str, float, float]]]:
    """A function that sends one /v3/message/all carrying ``token`` in its payload and returns
    (message id, time posted, time accepted)."""

    async def fire(token: str) -> tuple[str, float, float]:
        form = {"restricted_package_name": package, "title": "Bench",
                "description": description, "payload": _payload(token),
                "extra.channel_id": channel}  # fmt: skip
        posted = time.time()
        resp = (await client.post("/v3/message/all", data=form)).json()
        accepted = time.time()
        if resp.get("code") != 0:
            raise RuntimeError(f"broadcast refused: {resp}")
        return resp["data"]["id"], posted, accepted

    return fire


async def broadcast(cfg: Config, n: int) -> dict[str, Any]:
    """Fan-out of /v3/message/all to ``n`` connected devices, every delivery verified; also the
    server's memory per idle connection (before the first round)."""
    rounds: list[dict[str, Any]] = []
    with Server(f"broadcast{n}") as srv:
        srv.create_app()
        srv.start()
        channel = srv.private_channel()
        await asyncio.to_thread(srv.wait_idle)
        before = srv.rss_kib()
        headers = {"Authorization": f"key={srv.app['app_secret']}"}
        async with (
            devices(srv, n, per_generator=cfg.per_generator) as (gens, ready),
            httpx.AsyncClient(base_url=srv.api_url, headers=headers, timeout=30) as client,
        ):
            await asyncio.to_thread(srv.wait_idle)
            await asyncio.sleep(1.0)
            after = srv.rss_kib()

            fire = _broadcaster(client, srv.app["package"], channel, "broadcast")

            with profiled(srv.pid, gens[0].proc.pid):
                for r in range(cfg.rounds):
                    rounds.append(
                        await _round(cfg, srv.wait_idle, srv.system_cpu_seconds, gens, fire, r, n)
                    )
        srv.stop()
    return _fanout_result("broadcast", n, ready, rounds, before, after, srv.errors)


@contextlib.contextmanager
def profiled(server: int, generator: int, name: str = "") -> Iterator[None]:
    """With ``BENCH_PROFILE=<file>`` set, sample the server (into ``<file>``) and one load
    generator (``<file>.gen``) with py-spy (raw format, not pausing them) while the block runs:
    the broadcast rounds only, not the connecting. ``BENCH_PERF=<file>`` records the server with
    ``perf`` instead (kernel and native frames)."""
    out = os.environ.get("BENCH_PROFILE")
    perf_out = os.environ.get("BENCH_PERF")
    if name:  # another server than Tidings: its own files
        out, perf_out = out and f"{out}.{name}", perf_out and f"{perf_out}.{name}"
    if perf_out:  # the kernel's share too: perf samples the server, native stacks
        perf = subprocess.Popen(
            ["perf", "record", "-F", "999", "-g", "-p", str(server), "-o", perf_out],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        return
    if not out:
        yield
        return
    spy = str(Path(sys.executable).with_name("py-spy"))
    spies = [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--nonblocking",
                "--rate",
                os.environ.get("BENCH_PROFILE_RATE", "250"),
                "--output",
                path,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, path in ((server, out), (generator, out + ".gen"))
    ]
    try:
        yield
    finally:
        for proc in spies:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


def _payload(token: str, size: int = 200) -> str:
    """A 200-byte payload, as Mosquitto's messages carry; unique per round."""
    return token + "-" * (size - len(token))


async def mosquitto(cfg: Config, n: int, qos: int = 0) -> dict[str, Any]:
    """The same fan-out against our own Mosquitto: N subscribers, one 200-byte publish. At QoS 0
    (the comparison issue 3 names) nothing comes back; at QoS 1 each subscriber PUBACKs, as each
    Tidings device acks."""
    rounds: list[dict[str, Any]] = []
    with Mosquitto() as broker:
        broker.start()
        await asyncio.to_thread(broker.wait_idle)
        before = broker.rss_kib()
        async with devices(broker, n, per_generator=cfg.per_generator, qos=qos) as (gens, ready):
            await asyncio.to_thread(broker.wait_idle)
            await asyncio.sleep(1.0)
            after = broker.rss_kib()

            async def fire(token: str) -> tuple[str, float, float]:
                sent = await publish("127.0.0.1", broker.port, _payload(token), qos=qos)
                return token, sent, time.time()

            assert broker.proc is not None
            with profiled(broker.proc.pid, gens[0].proc.pid, "mosquitto"):
                for r in range(cfg.rounds):
                    rounds.append(
                        await _round(
                            cfg, broker.wait_idle, broker.system_cpu_seconds, gens, fire, r, n
                        )
                    )
        broker.stop()
    kind = "mosquitto_qos1" if qos else "mosquitto"
    result = _fanout_result(kind, n, ready, rounds, before, after, broker.errors)
    result["broker"] = broker.version() + f", allow_duplicate_messages true, QoS {qos}, 200 B"
    return result


def _fanout_result(
    kind: str,
    n: int,
    ready: list[dict[str, Any]],
    rounds: list[dict[str, Any]],
    before: float,
    after: float,
    errors: list[str],
) -> dict[str, Any]:
    good = [x for x in rounds if x["verified"]]
    secs = [x["seconds_to_last"] for x in good]
    cpu = [x["server_cpu_s"] * 1e6 / n for x in good]
    return {
        "scenario": kind,
        "devices": n,
        "generator_processes": len(ready),
        "connect_register_per_s": n / max(x["connect_s"] for x in ready),
        "rounds": rounds,
        "verified_rounds": len(good),
        "median_seconds_to_last": statistics.median(secs) if secs else None,
        "deliveries_per_s": n / statistics.median(secs) if secs else None,
        "best_deliveries_per_s": n / min(secs) if secs else None,
        "server_cpu_us_per_delivery": statistics.median(cpu) if cpu else None,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / n,
        "server_log_problems": errors[:20],
    }


async def _round(
    cfg: Config,
    wait_idle: Callable[[], float],
    system_cpu: Callable[[], float],
    gens: list[Gen],
    fire: Callable[[str], Awaitable[tuple[str, float, float]]],
    r: int,
    n: int,
) -> dict[str, Any]:
    """One broadcast: arm the devices, send, wait until every device has it, then check."""
    token = f"round-{r}-{secrets.token_hex(4)}"
    for g in gens:
        await g.ask({"cmd": "arm", "payload": _payload(token)}, timeout=30)
    cpu0 = await asyncio.to_thread(wait_idle)
    sys0 = system_cpu()
    msg_id, posted, accepted = await fire(token)
    wait = {"cmd": "wait", "id": msg_id, "timeout": cfg.round_timeout_s}
    done = await asyncio.gather(*(g.ask(wait, cfg.round_timeout_s + 30) for g in gens))
    cpu = await asyncio.to_thread(wait_idle) - cpu0  # includes processing the acks
    system = system_cpu() - sys0
    problems: dict[str, int] = {}
    for d in done:
        for k, v in d["problems"].items():
            problems[k] = problems.get(k, 0) + v
    got = sum(d["received"] for d in done)
    failed = any(d["timed_out"] or d["missing"] or d["wrong_id"] for d in done)
    last = max((d["last"] for d in done if d["last"]), default=None)
    first = min((d["first"] for d in done if d["first"]), default=None)
    return {
        "round": r,
        "verified": got == n and not failed and not problems,
        "received": got,
        "problems": problems,
        "missing": sum(d["missing"] for d in done),
        "lost": sum(d["lost"] for d in done),
        "post_ms": (accepted - posted) * 1000,
        "ms_to_first": (first - posted) * 1000 if first else None,
        "seconds_to_last": (last - posted) if last else None,
        "server_cpu_s": cpu,
        "server_system_cpu_s": system,
        "loadgen_cpu_s": sum(d["cpu_s"] for d in done),
    }


async def memory(cfg: Config, n: int) -> dict[str, Any]:
    """Server RSS per idle, registered device connection."""
    with Server(f"memory{n}") as srv:
        srv.create_app()
        srv.start()
        await asyncio.to_thread(srv.wait_idle)
        before = srv.rss_kib()
        async with devices(srv, n) as (_, ready):
            await asyncio.to_thread(srv.wait_idle)
            await asyncio.sleep(1.0)
            after = srv.rss_kib()
        srv.stop()
    return {
        "scenario": "memory",
        "devices": n,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / n,
        "connect_register_per_s": n / max(x["connect_s"] for x in ready),
        "server_log_problems": srv.errors[:20],
    }


async def latency(cfg: Config) -> dict[str, Any]:
    """Send → device latency of unicasts at a steady rate; sender and devices share one process
    (one clock)."""
    with Server("latency") as srv:
        srv.create_app()
        srv.start()
        srv.private_channel()
        gen = await Gen.start(
            "latency", "--gateway", srv.gateway_url, "--api", srv.api_url,
            f"--app={_app_arg(srv.app)}", f"--secret={srv.app['app_secret']}",
            "--count", str(cfg.latency_devices), "--rate", str(cfg.latency_rate),
            "--duration", str(cfg.latency_s), "--warmup", str(cfg.warmup_s),
        )  # fmt: skip
        try:
            connected = await gen.read(timeout=180)
            if connected.get("event") != "connected":
                raise RuntimeError(f"latency generator: {connected}")
            cpu0 = srv.cpu_seconds()
            res = await gen.read(timeout=cfg.latency_s + 120)
            cpu = srv.cpu_seconds() - cpu0
        finally:
            await gen.close()
        srv.stop()
    res.pop("event", None)
    return {
        "scenario": "latency",
        "devices": cfg.latency_devices,
        "rate": cfg.latency_rate,
        "duration_s": cfg.latency_s,
        "warmup_s": cfg.warmup_s,
        **res,
        "verified": res["accepted"] == res["requested"] == res["received"]
        and not (res["missing"] or res["wrong"] or res["unexpected"] or res["problems"]),
        "server_cpu_busy": cpu / max(res["send_s"], 1e-9),
        "server_log_problems": srv.errors[:20],
    }


def _db(srv: Server) -> Path:
    """The store of the bench's apps: the default region's (apps of ``tidings app create``)."""
    found = sqlite_path(srv.data_dir, DEFAULT_REGION)
    if not found.exists():
        raise RuntimeError(f"no SQLite file {found}")
    return found


def _row_counts(db: Path, tables: tuple[str, ...] = ()) -> dict[str, int]:
    """Rows per table, read through a separate read-only connection (WAL: no blocking)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        if not tables:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            tables = tuple(r[0] for r in rows if not r[0].startswith("sqlite_"))
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()


async def drain(cfg: Config) -> dict[str, Any]:
    """Stored messages delivered and acked per second when offline devices come back."""
    n, k = cfg.drain_devices, cfg.drain_per_device
    if n > 1000:
        raise ValueError("drain: at most 1000 devices (one 1000-target request per message)")
    with Server("drain") as srv:
        srv.create_app()
        srv.start()
        async with devices(srv, n, emit_regids=True) as (_, ready):
            known = [
                {"uaid": u, "reg_id": r}
                for one in ready
                for u, r in zip(one["uaids"], one["reg_ids"], strict=True)
            ]
        await asyncio.to_thread(srv.wait_idle)
        db = _db(srv)
        ids = await _send_to_all(srv, [d["reg_id"] for d in known], k)
        await asyncio.to_thread(srv.wait_idle)
        stored = (await asyncio.to_thread(_row_counts, db, ("inbox",)))["inbox"]
        (srv.dir / "devices.json").write_text(json.dumps(known))
        (srv.dir / "ids.json").write_text(json.dumps(ids))
        cpu0 = srv.cpu_seconds()
        gen = await Gen.start(
            "drain", "--gateway", srv.gateway_url, f"--app={_app_arg(srv.app)}",
            "--devices-file", str(srv.dir / "devices.json"),
            "--ids-file", str(srv.dir / "ids.json"),
            "--timeout", str(cfg.round_timeout_s * 2),
        )  # fmt: skip
        try:
            res = await gen.read(timeout=cfg.round_timeout_s * 2 + 120)
            left, acked_at = stored, None  # wait until the acks have emptied the inbox
            for _ in range(600):
                left = (await asyncio.to_thread(_row_counts, db, ("inbox",)))["inbox"]
                if left == 0:
                    acked_at = time.time()
                    break
                await asyncio.sleep(0.05)
            cpu = srv.cpu_seconds() - cpu0
        finally:
            await gen.close()
        srv.stop()
    total = n * k
    delivered_s = res["last"] - res["began"] if res["last"] else None
    acked_s = acked_at - res["began"] if acked_at else None
    res.pop("event", None)
    return {
        "scenario": "drain",
        "devices": n,
        "per_device": k,
        "messages": total,
        "stored_inbox_rows": stored,
        **res,
        "left_in_inbox": left,
        "verified": stored == total
        and res["received"] == total
        and res["exact_devices"] == n
        and not (res["regid_changed"] or res["problems"] or res["missing"] or left),
        "seconds_to_delivered": delivered_s,
        "seconds_to_acked": acked_s,
        "delivered_per_s": total / delivered_s if delivered_s else None,
        "acked_per_s": total / acked_s if acked_s else None,
        "server_cpu_us_per_message": cpu * 1e6 / total,
        "server_log_problems": srv.errors[:20],
    }


async def _send_to_all(srv: Server, reg_ids: list[str], k: int) -> list[str]:
    """``k`` messages, each one request to every regId; return the message ids."""
    channel = srv.private_channel()
    headers = {"Authorization": f"key={srv.app['app_secret']}"}
    gate = asyncio.Semaphore(4)
    targets = ",".join(reg_ids)

    async def one(client: httpx.AsyncClient, i: int) -> str:
        form = {"restricted_package_name": srv.app["package"], "title": "Bench",
                "description": "drain", "payload": f"drain-{i}",
                "registration_id": targets, "extra.channel_id": channel}  # fmt: skip
        async with gate:
            resp = (await client.post("/v3/message/regid", data=form)).json()
        if resp.get("code") != 0 or resp.get("data", {}).get("bad_regids"):
            raise RuntimeError(f"send refused: {resp}")
        return str(resp["data"]["id"])

    async with httpx.AsyncClient(base_url=srv.api_url, headers=headers, timeout=60) as client:
        return list(await asyncio.gather(*(one(client, i) for i in range(k))))


def _insert_devices(db: Path, app_id: str, n: int) -> None:
    """``n`` registered devices written straight into the stopped server's SQLite file."""
    now = int(time.time() * 1000)
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO devices (reg_id, app_id, uaid, log_cursor, created_at)"
            " VALUES (?, ?, ?, 0, ?)",
            ((f"bench{i:010d}", app_id, f"{i:032x}", now) for i in range(n)),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def million(cfg: Config) -> dict[str, Any]:
    """/v3/message/all to ``million_devices`` registered devices, a handful of them online: the
    answer time, and how many rows the sends wrote."""
    n = cfg.million_devices
    rounds: list[dict[str, Any]] = []
    with Server("million") as srv:
        app = srv.create_app()
        db = _db(srv)
        t = time.monotonic()
        await asyncio.to_thread(_insert_devices, db, app["app_id"], n)
        insert_s = time.monotonic() - t
        srv.start()
        channel = srv.private_channel()
        headers = {"Authorization": f"key={srv.app['app_secret']}"}
        async with (
            devices(srv, cfg.million_online) as (gens, _),
            httpx.AsyncClient(base_url=srv.api_url, headers=headers, timeout=30) as client,
        ):
            await asyncio.to_thread(srv.wait_idle)
            before = await asyncio.to_thread(_row_counts, db)

            fire = _broadcaster(client, srv.app["package"], channel, "million")

            for r in range(cfg.million_sends):
                rounds.append(
                    await _round(
                        cfg,
                        srv.wait_idle,
                        srv.system_cpu_seconds,
                        gens,
                        fire,
                        r,
                        cfg.million_online,
                    )
                )
            await asyncio.to_thread(srv.wait_idle)
            after = await asyncio.to_thread(_row_counts, db)
        srv.stop()
    sends = len(rounds)
    delta = {t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)}
    answer = [x["post_ms"] for x in rounds]
    return {
        "scenario": "million",
        "registered": before.get("devices", 0),
        "online": cfg.million_online,
        "insert_s": insert_s,
        "sends": sends,
        "verified_rounds": sum(1 for x in rounds if x["verified"]),
        "answer_ms_p50": statistics.median(answer) if answer else None,
        "answer_ms_max": max(answer) if answer else None,
        "rows_delta": delta,
        "rows_per_send": sum(delta.values()) / sends if sends else None,
        "messages_rows_per_send": delta.get("messages", 0) / sends if sends else None,
        "inbox_rows_per_send": delta.get("inbox", 0) / sends if sends else None,
        "rounds": rounds,
        "server_log_problems": srv.errors[:20],
    }

"""The scenarios. Each starts its own server; load generators run as separate processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bench import machine
from bench.server import Server

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Config:
    unicast_devices: int = 1000
    fanout_targets: int = 1000
    http_concurrency: int = 64
    fanout_concurrency: int = 8
    warmup_s: float = 2.0
    duration_s: float = 10.0
    broadcast_sizes: tuple[int, ...] = (1000, 10000)
    rounds: int = 5
    memory_sizes: tuple[int, ...] = (1000, 10000)
    round_timeout_s: float = 60.0


FULL = Config()
QUICK = Config(
    warmup_s=0.5,
    duration_s=2.0,
    broadcast_sizes=(200,),
    rounds=2,
    memory_sizes=(200,),
    round_timeout_s=20.0,
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
    srv: Server, n: int, emit_regids: bool = False
) -> AsyncIterator[tuple[list[Gen], list[dict[str, Any]]]]:
    """``n`` connected, registered devices from one generator process (two above 2000)."""
    procs = 1 if n <= 2000 else 2
    counts = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    extra = ["--emit-regids"] if emit_regids else []
    gens: list[Gen] = []
    try:
        for c in counts:
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


async def broadcast(cfg: Config, n: int) -> dict[str, Any]:
    """Fan-out of /v3/message/all to ``n`` connected devices, every delivery verified."""
    rounds: list[dict[str, Any]] = []
    with Server(f"broadcast{n}") as srv:
        srv.create_app()
        srv.start()
        headers = {"Authorization": f"key={srv.app['app_secret']}"}
        async with (
            devices(srv, n) as (gens, ready),
            httpx.AsyncClient(base_url=srv.api_url, headers=headers, timeout=30) as client,
        ):
            for r in range(cfg.rounds):
                rounds.append(await _round(cfg, srv, gens, client, r, n))
        srv.stop()
    good = [x for x in rounds if x["verified"]]
    secs = [x["seconds_to_last"] for x in good]
    cpu = [x["server_cpu_s"] * 1e6 / n for x in good]
    return {
        "scenario": "broadcast",
        "devices": n,
        "generator_processes": len(ready),
        "connect_register_per_s": n / max(x["connect_s"] for x in ready),
        "rounds": rounds,
        "verified_rounds": len(good),
        "median_seconds_to_last": statistics.median(secs) if secs else None,
        "deliveries_per_s": n / statistics.median(secs) if secs else None,
        "best_deliveries_per_s": n / min(secs) if secs else None,
        "server_cpu_us_per_delivery": statistics.median(cpu) if cpu else None,
        "server_log_problems": srv.errors[:20],
    }


async def _round(
    cfg: Config, srv: Server, gens: list[Gen], client: httpx.AsyncClient, r: int, n: int
) -> dict[str, Any]:
    """One broadcast: arm the devices, POST, wait until every device has it, then check."""
    payload = f"round-{r}-{secrets.token_hex(4)}"
    for g in gens:
        await g.ask({"cmd": "arm", "payload": payload}, timeout=30)
    cpu0 = await asyncio.to_thread(srv.wait_idle)
    form = {"restricted_package_name": srv.app["package"], "title": "Bench",
            "description": "broadcast", "payload": payload}  # fmt: skip
    posted = time.time()
    resp = (await client.post("/v3/message/all", data=form)).json()
    accepted = time.time()
    if resp.get("code") != 0:
        raise RuntimeError(f"broadcast refused: {resp}")
    wait = {"cmd": "wait", "id": resp["data"]["id"], "timeout": cfg.round_timeout_s}
    done = await asyncio.gather(*(g.ask(wait, cfg.round_timeout_s + 30) for g in gens))
    cpu = await asyncio.to_thread(srv.wait_idle) - cpu0  # includes processing the acks
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

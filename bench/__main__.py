"""``python -m bench [--quick] [--record] [--only NAME]``: run the scenarios, print a table,
write ``bench/results/<timestamp>.json`` and (full runs, or ``--record``) append the table to
``docs/performance.md``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from bench import machine, mqtt, report, scenarios

Step = tuple[str, Callable[[], Awaitable[dict[str, Any]]]]


def plan(cfg: scenarios.Config) -> list[Step]:
    steps: list[Step] = [
        ("unicast-1", lambda: scenarios.unicast(cfg, 1)),
        ("unicast-fanout", lambda: scenarios.unicast(cfg, cfg.fanout_targets)),
    ]
    for n in cfg.broadcast_sizes:  # Tidings then Mosquitto at each N: the scale curve
        steps.append((f"broadcast-{n}", lambda n=n: scenarios.broadcast(cfg, n)))  # type: ignore[misc]
        if cfg.mosquitto:
            steps.append((f"mosquitto-{n}", lambda n=n: scenarios.mosquitto(cfg, n)))  # type: ignore[misc]
    if cfg.mosquitto and cfg.broadcast_sizes:  # like for like: subscribers that ack, largest N
        n = max(cfg.broadcast_sizes)
        steps.append((f"mosquitto-qos1-{n}", lambda n=n: scenarios.mosquitto(cfg, n, qos=1)))  # type: ignore[misc]
    for n in cfg.memory_sizes:
        steps.append((f"memory-{n}", lambda n=n: scenarios.memory(cfg, n)))  # type: ignore[misc]
    steps.append(("latency", lambda: scenarios.latency(cfg)))
    steps.append(("drain", lambda: scenarios.drain(cfg)))
    steps.append(("million", lambda: scenarios.million(cfg)))
    return steps


def _source() -> dict[str, Any]:
    """The commit measured, and whether the working tree had changes on top of it."""
    try:
        git = ["git", "-C", str(report.ROOT)]
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "src"], capture_output=True, text=True
        )
        return {"commit": commit.stdout.strip(), "src_modified": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def _loadavg() -> str:
    """Other work on the machine disturbs the numbers; keep the load average with them."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return ""


def _chosen(name: str, only: list[str]) -> bool:
    return any(name == o or name.startswith(o + "-") for o in only)


async def run(steps: list[Step], budget_s: float) -> list[dict[str, Any]]:
    results = []
    for name, step in steps:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        began = time.monotonic()
        busy0, own0 = machine.busy_cpu_seconds(), machine.own_cpu_seconds()
        try:
            result = await asyncio.wait_for(step(), budget_s)
        except Exception as exc:  # one broken scenario must not hide the others' numbers
            traceback.print_exc()
            result = {"scenario": "failed", "name": name, "error": f"{type(exc).__name__}: {exc}"}
        result["elapsed_s"] = round(time.monotonic() - began, 1)
        other = machine.busy_cpu_seconds() - busy0 - (machine.own_cpu_seconds() - own0)
        result["other_processes_cpu_s"] = round(max(0.0, other), 2)  # background disturbance
        print(f"[bench] {name} done in {result['elapsed_s']} s", file=sys.stderr, flush=True)
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, for CI (< 60 s)")
    parser.add_argument(
        "--no-mosquitto", action="store_true", help="skip the Mosquitto side-by-side runs"
    )
    parser.add_argument(
        "--record", action="store_true", help="append to docs/performance.md even for a quick run"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only this scenario or family: unicast, unicast-1, broadcast-1000, ...",
    )
    parser.add_argument("--rounds", type=int, help="broadcast rounds per size (default 5)")
    args = parser.parse_args()
    machine.raise_nofile()
    machine.pin(machine.LOADGEN_CPU)
    cfg = scenarios.QUICK if args.quick else scenarios.FULL
    if args.rounds:
        cfg = dataclasses.replace(cfg, rounds=args.rounds)
    if args.no_mosquitto or not os.path.exists(mqtt.MOSQUITTO):
        cfg = dataclasses.replace(cfg, mosquitto=False)
    steps = [s for s in plan(cfg) if not args.only or _chosen(s[0], args.only)]
    started = time.monotonic()
    load_before = _loadavg()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    if args.quick or args.only:  # partial runs are not records (git ignores these names)
        stamp += "-quick" if args.quick else "-partial"
    results = asyncio.run(run(steps, budget_s=60 if args.quick else 240))
    payload = {
        "mode": "quick" if args.quick else "full",
        "machine": machine.describe(),
        "source": _source(),
        "loadavg_before_after": [load_before, _loadavg()],
        "config": dataclasses.asdict(cfg),
        "elapsed_s": round(time.monotonic() - started, 1),
        "results": results,
    }
    data, goals = report.rows(results), report.targets(results)
    print(report.table(data))
    print(f"\nIssue 3's targets ({payload['mode']} run; Mosquitto: allow_duplicate_messages true):")
    print(report.target_table(goals))
    print(f"\nload average before / after: {' / '.join(payload['loadavg_before_after'])}")
    path = report.write_json(payload, stamp)
    print(f"results: {path}")
    if (not args.quick or args.record) and not args.only:
        report.append_doc(payload, data, path, goals)
        print(f"appended to {report.DOC}")
        if not args.quick and (curve := report.plot(results)):
            print(f"scale curve: {curve}")
    return 1 if any(r["scenario"] == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

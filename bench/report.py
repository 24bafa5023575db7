"""Results: the printed table, the JSON file and the section appended to docs/performance.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"
NOISE_CPU_S = 1.0  # CPU-s of unrelated processes during a scenario worth flagging (or 10 %)
HEADERS = ("Scenario", "Setup", "Result", "Unit", "Details")

INTRO = """\
# Performance

Baseline numbers for one Tidings node (SQLite store, in-process bus), measured by the benchmark
suite in `bench/`. Every scenario starts its own real `tidings serve` subprocess on free ports
with a fresh temporary `--data-dir`; load comes from separate generator processes that talk to
it over 127.0.0.1 only. On a machine with two or more CPUs the server is pinned to CPU 0 and the
generators (and the orchestrator) to CPU 1, so the server has one core to itself and the numbers
are what *one core* of the server does. Server CPU time is read from `/proc/<pid>/stat` of the
server process only (all its threads: event loop, SQLite writer and readers); its memory from
`VmRSS` in `/proc/<pid>/status`.

## Scenarios

1. **Unicast sends** (`POST /v3/message/regid`, durable, SQLite). An app is created with
   `tidings app create`; 1000 devices register through the gateway (hello, app_register) and
   disconnect, so the run measures the *accept* path: authenticate, parse, resolve the regIds
   and commit the message and its inbox rows (fsync'd group commit) before answering. A raw
   asyncio HTTP/1.1 keep-alive client fires form-encoded sends from many connections for a
   fixed time after a warm-up, and only responses with `code` 0 count. Measured twice: one
   regId per request (requests/s), and 1000 comma-joined regIds per request (targets/s).
2. **Broadcast fan-out** (`POST /v3/message/all`). N devices stay connected (a lean asyncio
   WebSocket client, one or two generator processes) and subscribe to nothing. Each round posts
   one broadcast and measures from just before the POST until the *last* device has received
   it; deliveries/s = N / that time (median over the rounds). Every device checks every
   notification (its own regId, a positive seq, the round's payload, no duplicate) and acks it;
   a round counts only if every device got exactly the message id the API returned. Server CPU
   per delivery covers the POST, the fan-out and the ack processing (measured from an idle
   server to an idle server).
3. **Memory per idle connection.** Server RSS before any device connects and after N devices
   have connected, registered and gone idle, divided by N. This includes everything a
   registered device costs the server process (socket and protocol state, hub slot, SQLite
   page cache for its rows), not just the socket.

## How to run

    .venv/bin/python -m bench            # full run (< 10 minutes); appends to this file
    .venv/bin/python -m bench --quick    # smoke test for CI (< 60 s); prints, writes JSON only
    .venv/bin/python -m bench --quick --record   # also append the quick run here
    .venv/bin/python -m bench --only broadcast   # one scenario family; never appended here

Each run prints a table and writes `bench/results/<timestamp>.json` with every measurement and
the machine (CPU model, cores, RAM, kernel, Python, date) and the commit measured. The suite also
measures how much CPU *other* processes used during each scenario (machine-wide busy time from
`/proc/stat` minus the suite's own processes); when that is over 10 % of the scenario's wall
time (at least 1 CPU-second) the row says so with a NOTE: such numbers are lower bounds.

## Results
"""


def _n(x: float | None, fmt: str = ",.0f") -> str:
    return "n/a" if x is None else format(x, fmt)


def rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for r in results:
        kind, first = r["scenario"], len(out)
        if kind == "unicast":
            setup = (
                f"{r['devices']} devices (offline), {r['concurrency']} conns, {r['duration_s']:g} s"
            )
            errs = sum(r["errors"].values()) + len(r["worker_failures"])
            common = (
                f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, server CPU "
                f"{r['server_cpu_busy']:.0%} (loadgen {r['loadgen_cpu_busy']:.0%}), "
                f"errors {errs}"
            )
            if r["targets_per_request"] == 1:
                out.append(
                    (
                        "Unicast send, 1 regId",
                        setup,
                        _n(r["requests_per_s"]),
                        "req/s",
                        f"{common}, {_n(r['server_cpu_ms_per_request'], '.2f')} ms CPU/req",
                    )
                )
            else:
                out.append(
                    (
                        f"Unicast send, {r['targets_per_request']} regIds",
                        setup,
                        _n(r["targets_per_s"]),
                        "targets/s",
                        f"{r['requests_per_s']:.1f} req/s, {common}",
                    )
                )
        elif kind == "broadcast":
            n, k = r["devices"], len(r["rounds"])
            setup = f"N={n:,}, {r['generator_processes']} gen proc, {k} rounds"
            med = r["median_seconds_to_last"]
            out.append(
                (
                    "Broadcast fan-out",
                    setup,
                    _n(r["deliveries_per_s"]),
                    "deliveries/s",
                    f"last device after {_n(med and med * 1000, ',.0f')} ms (median), "
                    f"best {_n(r['best_deliveries_per_s'])}/s, verified "
                    f"{r['verified_rounds']}/{k} rounds",
                )
            )
            out.append(
                (
                    "Broadcast server CPU",
                    f"N={n:,}",
                    _n(r["server_cpu_us_per_delivery"], ",.1f"),
                    "µs CPU/delivery",
                    "POST + fan-out + acks, median of verified rounds",
                )
            )
        elif kind == "memory":
            out.append(
                (
                    "Idle connection memory",
                    f"N={r['devices']:,} registered devices",
                    f"{r['kib_per_connection']:.1f}",
                    "KiB/connection",
                    f"RSS {r['rss_before_kib'] / 1024:.0f} → {r['rss_after_kib'] / 1024:.0f}"
                    f" MiB, connect+register {r['connect_register_per_s']:,.0f}/s",
                )
            )
        elif kind == "failed":
            lines = r["error"].strip().splitlines() or [""]
            why = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1].strip()}"
            out.append((r["name"], "", "FAILED", "", why[:200]))
        other = r.get("other_processes_cpu_s", 0.0)
        if (
            other > max(NOISE_CPU_S, 0.1 * r.get("elapsed_s", 0)) and len(out) > first
        ):  # the machine was not quiet: say so
            scenario, setup, value, unit, details = out[first]
            note = f"{details}; NOTE other processes used {other:.1f} CPU-s meanwhile"
            out[first] = (scenario, setup, value, unit, note)
    return out


def table(data: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADERS, *data]) for i in range(len(HEADERS))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in data:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def markdown(data: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in data:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def write_json(payload: dict[str, Any], stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return path


def append_doc(payload: dict[str, Any], data: list[tuple[str, ...]], json_path: Path) -> None:
    m, src = payload["machine"], payload.get("source", {})
    dirty = " + uncommitted src changes" if src.get("src_modified") else ""
    section = (
        f"\n### {m['date']} ({payload['mode']} run)\n\n"
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}; server pinned to CPU 0 and load to CPU 1: "
        f"{'yes' if m['pinning'] else 'no'}. Source: commit "
        f"{src.get('commit', '?')[:10]}{dirty}"
        f". Took {payload['elapsed_s']:.0f} s. Raw results: "
        f"`{json_path.relative_to(ROOT)}`.\n\n{markdown(data)}\n"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    if not DOC.exists():
        DOC.write_text(INTRO)
    with DOC.open("a") as f:
        f.write(section)

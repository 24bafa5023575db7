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

Numbers for one Tidings node (SQLite store, in-process bus), measured by the benchmark suite in
`bench/`, side by side with Mosquitto in the same run. Every scenario starts its own real
`tidings serve` subprocess (or its own `mosquitto`) on free ports with a fresh temporary data
directory; load comes from separate generator processes that talk to it over 127.0.0.1 only. On
a machine with two or more CPUs the server is pinned to CPU 0 and the generators (and the
orchestrator) to CPU 1, so the server has one core to itself and the numbers are what *one core*
of the server does. Server CPU time is read for the server process only, all its threads
(event loop, SQLite writer and readers): the total from each thread's scheduler run time in
nanoseconds (`/proc/<pid>/task/*/schedstat`), the system part from `/proc/<pid>/stat` (10 ms
clock ticks); its memory from `VmRSS` in `/proc/<pid>/status`.

Each run prints two tables: every measurement, and the figures of issue 3 with their goal, must,
the value measured and pass / miss. Both are appended below with the machine, the commit and the
load average (other work on the machine disturbs the numbers; rows say so with a NOTE when other
processes used over 10 % of a scenario's wall time in CPU).

![Memory per connection and fan-out time against N](scale-curve.png)

The [scale curve](scale-curve.png) is redrawn by each full run: server memory per idle connection
and time until the last device has a broadcast, for 1k, 5k, 10k and 19k connected devices,
Tidings against Mosquitto.

## Scenarios

1. **Unicast sends** (`POST /v3/message/regid`, durable, SQLite). An app is created with
   `tidings app create`; 1000 devices register through the gateway (hello, app_register) and
   disconnect, so the run measures the *accept* path: authenticate, parse, resolve the regIds
   and commit the message and its inbox rows (fsync'd group commit) before answering. A raw
   asyncio HTTP/1.1 keep-alive client fires form-encoded sends from many connections for a
   fixed time after a warm-up, and only responses with `code` 0 count. Measured twice: one
   regId per request (requests/s), and 1000 comma-joined regIds per request (targets/s).
2. **Broadcast fan-out and memory, N = 1k, 5k, 10k, 19k** (`POST /v3/message/all`, 200-byte
   payload). N devices stay connected (a lean asyncio WebSocket client, `asyncio.Protocol`, no
   task per connection, at most 5,000 per generator process: the open-file limit is 20,000 per
   process, so 19k devices take four generators while the server holds all 19k). Each round
   posts one broadcast and measures from just before the POST until the *last* device has
   received it (median over 5 rounds). Every device checks every notification (its own regId, a
   positive seq, the round's payload, no duplicate) and acks it; a round counts only if every
   device got exactly the message id the API returned. Server CPU per delivery covers the POST,
   the fan-out and the ack processing (from an idle server to an idle server). Memory per idle
   connection is the server's RSS after the N devices connected, registered and went idle, minus
   its RSS before, divided by N. The bench sends in a channel of the `private` category, which
   has no daily delivery quota (the default category's quota, one message per registered device
   and day, would refuse later rounds with 200001).
3. **Mosquitto, same N** (`/usr/sbin/mosquitto`, started by the bench on a free port with
   `allow_duplicate_messages true`, `persistence false`, `allow_anonymous true`,
   `max_queued_messages 1000000`, pinned to CPU 0). N subscribers (a hand-written MQTT 3.1.1
   client in `bench/mqtt.py`, same generator design) subscribe to one topic at QoS 0; one
   publisher sends one 200-byte message per round, whose payload carries the round's token; each
   subscriber checks the payload and counts duplicates. Timed from just before the PUBLISH is
   written until the last subscriber has it; broker CPU per delivery and memory per connection
   as for Tidings. `allow_duplicate_messages true` matters: Mosquitto 2.0.11's default scans
   earlier recipients on every delivery (cost grows with N²). The ratio in the targets table is
   Tidings' CPU per delivery divided by Mosquitto's at the largest N. At that N the bench also
   runs Mosquitto at QoS 1 (subscribe and publish at QoS 1, every subscriber PUBACKs), the like
   for like of Tidings' acked deliveries; the targets table gives that ratio too.
4. **End-to-end latency.** 1,000 devices connected; the same generator process sends
   `/v3/message/regid` unicasts to them round robin at 1,000 per second (open loop: request i is
   due at t0 + i/1000, over 32 keep-alive connections): 2 s of warm-up (checked, not timed),
   then 10 s timed. Latency = the device's receive time minus the time the request was written,
   both `time.time()` in that one process. Every message is matched by the id the API returned,
   its regId and its payload. The JSON keeps p99 and max per second of the run.
5. **Offline drain.** 1,000 devices register and disconnect; 100 sends of 1000 targets each
   store 100,000 messages (100 per device, under the default backlog cap of 1,000). The devices
   then reconnect with their uaids (and must get their old regIds back), receive and ack. The
   rate is 100,000 divided by the time from the first connect until the server's inbox is empty
   (every message acked; polled in the SQLite file); the time until the last delivery is shown
   too. Each device must have got exactly the 100 message ids, no duplicate.
6. **Broadcast to 1,000,000 registered, mostly offline devices.** Registering a million devices
   through the gateway would take too long, so the bench writes 1,000,000 rows into the
   `devices` table of the stopped server's SQLite file in one transaction (unique regIds,
   `log_cursor` 0), starts the server, connects 10 more devices through the gateway (they must
   receive every broadcast), then posts 7 broadcasts and reports the API answer time (p50) and
   the rows each send added per table (row counts before and after, read from the SQLite file).

## How to run

    pip install -e '.[bench]'            # matplotlib, for the scale curve
    .venv/bin/python -m bench            # full run (< 15 minutes); appends to this file
    .venv/bin/python -m bench --quick    # smoke test for CI (< 60 s); prints, writes JSON only
    .venv/bin/python -m bench --quick --record   # also append the quick run here
    .venv/bin/python -m bench --only broadcast   # one scenario family; never appended here
    .venv/bin/python -m bench --no-mosquitto     # skip the Mosquitto runs

Each run writes `bench/results/<timestamp>.json` with every measurement (per round), the machine
(CPU model, cores, RAM, kernel, Python, open-file limit, date), the commit measured and the load
average before and after.

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
        elif kind in ("broadcast", "mosquitto", "mosquitto_qos1"):
            n, k = r["devices"], len(r["rounds"])
            setup = f"N={n:,}, {r['generator_processes']} gen proc, {k} rounds"
            med = r["median_seconds_to_last"]
            who = {"broadcast": "Tidings", "mosquitto": "Mosquitto"}.get(kind, "Mosquitto QoS 1")
            out.append(
                (
                    f"{who} broadcast fan-out",
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
                    f"{who} broadcast server CPU",
                    f"N={n:,}",
                    _n(r["server_cpu_us_per_delivery"], ",.1f"),
                    "µs CPU/delivery",
                    "POST + fan-out + acks, median of verified rounds"
                    if kind == "broadcast"
                    else f"publish + fan-out{' + PUBACKs' if kind != 'mosquitto' else ''}; "
                    f"{r.get('broker', '')}",
                )
            )
            out.append(
                (
                    f"{who} idle connection memory",
                    f"N={n:,} connected",
                    f"{r['kib_per_connection']:.1f}",
                    "KiB/connection",
                    f"RSS {r['rss_before_kib'] / 1024:.0f} → {r['rss_after_kib'] / 1024:.0f}"
                    f" MiB, connect {r['connect_register_per_s']:,.0f}/s",
                )
            )
        elif kind == "latency":
            errs = sum(r["errors"].values()) + len(r["worker_failures"])
            out.append(
                (
                    "End-to-end latency",
                    f"{r['rate']:,.0f} unicasts/s for {r['duration_s']:g} s (after "
                    f"{r.get('warmup_s', 0):g} s warm-up) to "
                    f"{r['devices']:,} connected devices",
                    f"p50 {_n(r['p50_ms'], '.1f')} / p99 {_n(r['p99_ms'], '.1f')}",
                    "ms",
                    f"max {_n(r['max_ms'], '.1f')} ms, sent {r['achieved_rate']:,.0f}/s, "
                    f"received {r['received']:,}/{r['requested']:,} "
                    f"({'verified' if r['verified'] else 'NOT verified'}), errors {errs}, "
                    f"server CPU {r['server_cpu_busy']:.0%}, "
                    f"loadgen CPU {r['client_cpu_busy']:.0%}",
                )
            )
        elif kind == "drain":
            out.append(
                (
                    "Offline drain",
                    f"{r['messages']:,} stored for {r['devices']:,} devices coming back",
                    _n(r["acked_per_s"]),
                    "msgs/s acked",
                    f"all delivered after {_n(r['seconds_to_delivered'], '.2f')} s "
                    f"({_n(r['delivered_per_s'])}/s), inbox empty after "
                    f"{_n(r['seconds_to_acked'], '.2f')} s (from the first connect); "
                    f"{r['exact_devices']:,}/{r['devices']:,} devices got exactly their ids "
                    f"({'verified' if r['verified'] else 'NOT verified'}), "
                    f"{_n(r['server_cpu_us_per_message'], '.1f')} µs server CPU/msg",
                )
            )
        elif kind == "million":
            rows = ", ".join(f"{t} {v / r['sends']:+.1f}" for t, v in r["rows_delta"].items())
            out.append(
                (
                    "Broadcast, mostly offline",
                    f"{r['registered']:,} registered, {r['online']} online, {r['sends']} sends",
                    _n(r["answer_ms_p50"], ".1f"),
                    "ms API answer (p50)",
                    f"max {_n(r['answer_ms_max'], '.1f')} ms; rows per send: {rows or 'none'};"
                    f" online devices got it in {r['verified_rounds']}/{r['sends']} sends",
                )
            )
        elif kind == "memory":
            out.append(
                (
                    "Tidings idle connection memory",
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
    return _render(HEADERS, data)


def markdown(data: list[tuple[str, ...]]) -> str:
    return markdown_with(HEADERS, data)


def write_json(payload: dict[str, Any], stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return path


def append_doc(
    payload: dict[str, Any],
    data: list[tuple[str, ...]],
    json_path: Path,
    goals: list[tuple[str, ...]] | None = None,
) -> None:
    m, src = payload["machine"], payload.get("source", {})
    dirty = " + uncommitted src changes" if src.get("src_modified") else ""
    section = (
        f"\n### {m['date']} ({payload['mode']} run)\n\n"
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}; server pinned to CPU 0 and load to CPU 1: "
        f"{'yes' if m['pinning'] else 'no'}. Source: commit "
        f"{src.get('commit', '?')[:10]}{dirty}"
        f". Took {payload['elapsed_s']:.0f} s. Load average before / after: "
        f"{' / '.join(payload.get('loadavg_before_after', []))}. Raw results: "
        f"`{json_path.relative_to(ROOT)}`.\n\n"
    )
    if goals:
        section += f"Issue 3's targets:\n\n{markdown_with(TARGET_HEADERS, goals)}\n\nAll rows:\n\n"
    section += f"{markdown(data)}\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    if not DOC.exists():
        DOC.write_text(INTRO)
    with DOC.open("a") as f:
        f.write(section)


# --- issue 3's targets ------------------------------------------------------------------------

TARGET_HEADERS = ("Figure", "Goal", "Must", "Measured", "Result")


def _largest(results: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = [r for r in results if r["scenario"] == kind and r.get("verified_rounds")]
    return max(found, key=lambda r: r["devices"]) if found else None


def _verdict(value: float | None, goal: float, must: float, lower_is_better: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = (lambda lim: value <= lim) if lower_is_better else (lambda lim: value >= lim)
    return "pass" if ok(goal) else "pass (must only)" if ok(must) else "MISS"


def targets(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per figure of issue 3: goal, must, what this run measured, pass or miss."""
    out: list[tuple[str, ...]] = []
    tid, mos = _largest(results, "broadcast"), _largest(results, "mosquitto")
    if tid:
        n, kib = tid["devices"], tid["kib_per_connection"]
        mq = f" (Mosquitto {mos['kib_per_connection']:.1f})" if mos else ""
        out.append(
            (
                f"Memory per idle connection, {n:,} connected",
                "≤ 10 KiB",
                "≤ 20 KiB",
                f"{kib:.1f} KiB{mq}",
                _verdict(kib, 10, 20),
            )
        )
        cpu = tid["server_cpu_us_per_delivery"]
        if mos and mos["devices"] == n and mos["server_cpu_us_per_delivery"]:  # > 0 ticks
            ratio = cpu / mos["server_cpu_us_per_delivery"]
            measured = (
                f"{ratio:.2f}× ({cpu:.1f} vs {mos['server_cpu_us_per_delivery']:.1f} µs; "
                "Mosquitto allow_duplicate_messages true)"
            )
            verdict = _verdict(ratio, 1, 2)
            acked = _largest(results, "mosquitto_qos1")
            if acked and acked["devices"] == n and acked["server_cpu_us_per_delivery"]:
                measured += (
                    f"; against QoS 1, whose subscribers ack as devices do: "
                    f"{cpu / acked['server_cpu_us_per_delivery']:.2f}× "
                    f"({acked['server_cpu_us_per_delivery']:.1f} µs)"
                )
        else:
            measured, verdict = f"{cpu:.1f} µs (no Mosquitto run at this N)", "n/a"
        out.append(
            (
                f"Broadcast to {n:,}: server CPU per delivery",
                "≤ 1× Mosquitto",
                "≤ 2× Mosquitto",
                measured,
                verdict,
            )
        )
        secs = tid["median_seconds_to_last"]
        mq = f" (Mosquitto {mos['median_seconds_to_last']:.2f} s)" if mos else ""
        out.append(
            (
                f"Broadcast to {n:,}: last device has it",
                "≤ 0.4 s",
                "≤ 1 s",
                f"{secs:.2f} s{mq}",
                _verdict(secs, 0.4, 1.0),
            )
        )
    for r in results:
        if r["scenario"] == "unicast" and r["targets_per_request"] == 1:
            v = r["requests_per_s"] if not r["errors"] else None
            out.append(
                (
                    "Unicast sends, 1 target per request",
                    "≥ 5,000 req/s",
                    "≥ 2,000 req/s",
                    f"{_n(v)} req/s",
                    _verdict(v, 5000, 2000, lower_is_better=False),
                )
            )
        elif r["scenario"] == "unicast":
            v = r["targets_per_s"] if not r["errors"] else None
            out.append(
                (
                    f"Unicast sends, {r['targets_per_request']} targets per request",
                    "≥ 50,000 targets/s",
                    "≥ 20,000 targets/s",
                    f"{_n(v)} targets/s",
                    _verdict(v, 50000, 20000, lower_is_better=False),
                )
            )
        elif r["scenario"] == "latency":
            p50, p99 = (r["p50_ms"], r["p99_ms"]) if r["verified"] else (None, None)
            if p50 is None or p99 is None:
                verdict = "n/a"
            else:
                verdict = "pass" if p50 <= 5 and p99 <= 25 else _verdict(p99, 0, 100)
            out.append(
                (
                    f"Latency send → device, {r['rate']:,.0f} msg/s",
                    "p50 ≤ 5 ms, p99 ≤ 25 ms",
                    "p99 ≤ 100 ms",
                    f"p50 {_n(p50, '.1f')} ms, p99 {_n(p99, '.1f')} ms",
                    verdict,
                )
            )
        elif r["scenario"] == "drain":
            v = r["acked_per_s"] if r["verified"] else None
            out.append(
                (
                    f"Offline drain, {r['messages']:,} msgs to {r['devices']:,} devices",
                    "≥ 20,000 msgs/s",
                    "≥ 5,000 msgs/s",
                    f"{_n(v)} msgs/s acked",
                    _verdict(v, 20000, 5000, lower_is_better=False),
                )
            )
        elif r["scenario"] == "million":
            ms, rows = r["answer_ms_p50"], r["rows_per_send"]
            ok = ms is not None and rows is not None and ms <= 50 and rows <= 10
            out.append(
                (
                    f"Broadcast to {r['registered']:,} registered, mostly offline",
                    "O(1) rows, answer ≤ 50 ms",
                    "same",
                    f"{_n(ms, '.1f')} ms, {_n(rows, '.1f')} rows written per send",
                    "pass" if ok else "MISS",
                )
            )
    return out


def target_table(data: list[tuple[str, ...]]) -> str:
    return _render(TARGET_HEADERS, data)


def _render(headers: tuple[str, ...], data: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *data]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in data:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def markdown_with(headers: tuple[str, ...], data: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in data:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


# --- the scale curve ---------------------------------------------------------------------------

CURVE = ROOT / "docs" / "scale-curve.png"


def plot(results: list[dict[str, Any]], path: Path = CURVE) -> Path | None:
    """Memory per connection and fan-out time against N, Tidings and Mosquitto (needs the
    ``bench`` extra: matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series = {}
    for kind, label in (("broadcast", "Tidings"), ("mosquitto", "Mosquitto")):
        pts = sorted(
            (r["devices"], r["kib_per_connection"], r["median_seconds_to_last"])
            for r in results
            if r["scenario"] == kind and r.get("median_seconds_to_last") is not None
        )
        if pts:
            series[label] = pts
    if not series:
        return None
    fig, (mem, fan) = plt.subplots(1, 2, figsize=(10, 4))
    for label, pts in series.items():
        ns = [p[0] for p in pts]
        mem.plot(ns, [p[1] for p in pts], marker="o", label=label)
        fan.plot(ns, [p[2] for p in pts], marker="o", label=label)
    mem.set(
        title="Server memory per idle connection",
        xlabel="connected devices",
        ylabel="KiB / connection",
    )
    fan.set(
        title="Broadcast: time until the last device has it",
        xlabel="connected devices",
        ylabel="seconds (median)",
    )
    for ax, goal, must in ((mem, 10, 20), (fan, 0.4, 1.0)):  # issue 3's targets (at 19k)
        ax.axhline(goal, color="green", linestyle="--", linewidth=0.8, label="goal")
        ax.axhline(must, color="red", linestyle=":", linewidth=0.8, label="must")
    for ax in (mem, fan):
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("Tidings vs Mosquitto (allow_duplicate_messages true, QoS 0, 200 B), one core")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

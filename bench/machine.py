"""Describe the machine a benchmark ran on, and place processes on its CPUs."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import sys

SERVER_CPU = 0
LOADGEN_CPU = 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_kib() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def describe() -> dict[str, object]:
    ram = _ram_kib()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "usable_cpus": sorted(_STARTING_CPUS),
        "ram_gib": round(ram / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nofile_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "pinning": pinning_enabled(),
    }


def usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


_STARTING_CPUS = frozenset(usable_cpus())  # before this process pins itself


def pinning_enabled() -> bool:
    return SERVER_CPU in _STARTING_CPUS and LOADGEN_CPU in _STARTING_CPUS


def busy_cpu_seconds() -> float:
    """Non-idle CPU time of the whole machine since boot (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (servers, generators)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def raise_nofile() -> None:
    """Raise this process's open-file soft limit to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin(cpu: int) -> None:
    """Pin this process to one CPU when the server / load-generator split is possible."""
    if pinning_enabled():
        os.sched_setaffinity(0, {cpu})


def server_preexec() -> None:  # runs in the child between fork and exec
    raise_nofile()
    pin(SERVER_CPU)


def loadgen_preexec() -> None:
    raise_nofile()
    pin(LOADGEN_CPU)

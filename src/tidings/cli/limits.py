"""``tidings limits``: the operator's per-device daily quotas and per-app request rate, as a
schedule with effective dates (a change set for a later date is announced until then)."""

from __future__ import annotations

import datetime
import time
from typing import Any

import click

from tidings.cli.common import emit, store_options, with_store
from tidings.core.quotas import PRESETS, Limits, LimitsEntry, active_entry
from tidings.store.store import Store


def _parse_effective(value: str) -> int | None:
    """``now`` (None) or ``YYYY-MM-DD`` (00:00 UTC that day) as epoch ms."""
    if value == "now":
        return None
    try:
        day = datetime.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD or now", param_hint="--effective") from None
    return int(day.timestamp() * 1000)


def _iso(ms: int) -> str:
    at = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _row(entry: LimitsEntry, state: str) -> dict[str, Any]:
    return {
        "limits_id": entry.limits_id,
        "preset": entry.limits.preset,
        "quotas": dict(entry.limits.quotas),
        "qps": entry.limits.qps,
        "effective_at": _iso(entry.effective_at),
        "state": state,
    }


def _states(schedule: list[LimitsEntry], now: int) -> list[dict[str, Any]]:
    active = active_entry(schedule, now)
    out = []
    for e in schedule:
        if e is active:
            state = "active"
        elif e.effective_at > now:
            state = "announced"
        else:
            state = "past"
        out.append(_row(e, state))
    return out


@click.group("limits")
def limits_group() -> None:
    """Per-device daily quotas and per-app request rate (a fresh install is unlimited)."""


@limits_group.command("set")
@store_options
@click.option("--preset", type=click.Choice(sorted(PRESETS)), required=True)
@click.option("--qps", type=click.IntRange(min=1), default=None, help="Requests/s per app.")
@click.option(
    "--effective", default="now", show_default=True, help="YYYY-MM-DD (00:00 UTC) or now."
)
def limits_set(
    data_dir: str | None, database_url: str | None, preset: str, qps: int | None, effective: str
) -> None:
    """Schedule limits: a preset (mipush = 1 default / 5 public / unlimited private messages per
    device, app and day) and an optional request rate, from now or from a date."""
    at = _parse_effective(effective)
    limits = Limits.of(preset, qps)

    async def go(store: Store) -> dict[str, Any]:
        entry = await store.set_limits(limits, at)
        now = store.clock.now_ms()
        return _row(entry, "active" if entry.effective_at <= now else "announced")

    emit(with_store(data_dir, database_url, go))


@limits_group.command("list")
@store_options
def limits_list(data_dir: str | None, database_url: str | None) -> None:
    """The schedule, oldest first, one JSON line each: state active, announced (future) or past."""

    async def go(store: Store) -> list[dict[str, Any]]:
        return _states(await store.limits_schedule(), int(time.time() * 1000))

    rows = with_store(data_dir, database_url, go)
    if not rows:
        emit({"preset": "unlimited", "quotas": {}, "qps": None, "state": "active"})
    for row in rows:
        emit(row)

"""Store operations for operator limits: the limits schedule and per-device delivered counts.

``device_daily`` counts the messages each device acked per UTC day and category; it is written
in the ack transaction only while some quota is active, so an unlimited install pays nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tidings import ids
from tidings.core.quotas import Limits, LimitsEntry
from tidings.store.batches import chunks, marks

if TYPE_CHECKING:
    from tidings.store.ops import Tx


def add_limits(tx: Tx, limits: Limits, effective_at: int, now: int) -> LimitsEntry:
    entry = LimitsEntry(ids.trace_id(), limits, effective_at, now)
    tx.execute(
        "INSERT INTO limits (limits_id, preset, quotas, qps, effective_at, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            entry.limits_id,
            limits.preset,
            json.dumps(dict(limits.quotas), sort_keys=True),
            limits.qps,
            effective_at,
            now,
        ),
    )
    return entry


def schedule(tx: Tx) -> list[LimitsEntry]:
    rows = tx.all(
        "SELECT limits_id, preset, quotas, qps, effective_at, created_at FROM limits"
        " ORDER BY effective_at, created_at"
    )
    return [
        LimitsEntry(
            str(r[0]),
            Limits(str(r[1]), json.loads(r[2]), None if r[3] is None else int(r[3])),
            int(r[4]),
            int(r[5]),
        )
        for r in rows
    ]


def count_delivered(tx: Tx, per_device: Mapping[tuple[str, str], int], day: str) -> None:
    """Add (reg_id, category) -> messages acked to the devices' counts of ``day``."""
    tx.many(
        "INSERT INTO device_daily (reg_id, day, category, delivered) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (reg_id, day, category)"
        " DO UPDATE SET delivered = device_daily.delivered + excluded.delivered",
        [(reg_id, day, cat, n) for (reg_id, cat), n in sorted(per_device.items())],
    )


def delivered_today(tx: Tx, reg_ids: Sequence[str], day: str, category: str) -> dict[str, int]:
    """Messages of ``category`` each device acked on ``day`` (devices with none are absent)."""
    out: dict[str, int] = {}
    for part in chunks(reg_ids):
        rows = tx.all(
            "SELECT reg_id, delivered FROM device_daily WHERE day = ? AND category = ?"
            f" AND reg_id IN ({marks(len(part))})",
            (day, category, *part),
        )
        out.update((str(r[0]), int(r[1])) for r in rows)
    return out


def sweep(tx: Tx, before_day: str) -> int:
    tx.execute("DELETE FROM device_daily WHERE day < ?", (before_day,))
    return tx.rowcount()

"""Store operations for platform rules (``Tx`` style): SDK policy, per-app SDK counts, misuse."""

from __future__ import annotations

from tidings.compliance.sdk_policy import SdkPolicy
from tidings.store.ops import Tx

_COLS = "sdk_name, min_version, deprecated_below, updated_at"


def set_policy(tx: Tx, policy: SdkPolicy) -> None:
    tx.execute("DELETE FROM sdk_policies WHERE sdk_name = ?", (policy.sdk_name,))
    tx.execute(
        f"INSERT INTO sdk_policies ({_COLS}) VALUES (?, ?, ?, ?)",
        (policy.sdk_name, policy.min_version, policy.deprecated_below, policy.updated_at),
    )


def policies(tx: Tx) -> list[SdkPolicy]:
    return [SdkPolicy(*r) for r in tx.all(f"SELECT {_COLS} FROM sdk_policies ORDER BY sdk_name")]


def policy(tx: Tx, sdk_name: str) -> SdkPolicy | None:
    row = tx.one(f"SELECT {_COLS} FROM sdk_policies WHERE sdk_name = ?", (sdk_name,))
    return SdkPolicy(*row) if row else None


def app_counts(tx: Tx, app_id: str) -> list[tuple[str, str, int]]:
    rows = tx.all(
        "SELECT sdk_name, sdk_version, count(*) FROM devices WHERE app_id = ?"
        " GROUP BY sdk_name, sdk_version ORDER BY sdk_name, sdk_version",
        (app_id,),
    )
    return [(r[0], r[1], int(r[2])) for r in rows]


def record_misuse(tx: Tx, app_id: str, kind: str, detail: str, now: int) -> None:
    """Count one package-binding misuse signal (bounded: one row per app, kind and detail)."""
    tx.execute(
        "INSERT INTO misuse_signals (app_id, kind, detail, count, first_at, last_at)"
        " VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (app_id, kind, detail)"
        " DO UPDATE SET count = misuse_signals.count + 1, last_at = excluded.last_at",
        (app_id, kind, detail[:255], now, now),
    )


def misuse_signals(tx: Tx, app_id: str | None, limit: int) -> list[dict[str, object]]:
    cols = "app_id, kind, detail, count, first_at, last_at"
    if app_id is None:
        rows = tx.all(f"SELECT {cols} FROM misuse_signals ORDER BY last_at DESC LIMIT ?", (limit,))
    else:
        rows = tx.all(
            f"SELECT {cols} FROM misuse_signals WHERE app_id = ? ORDER BY last_at DESC LIMIT ?",
            (app_id, limit),
        )
    names = cols.split(", ")
    return [dict(zip(names, r, strict=True)) for r in rows]

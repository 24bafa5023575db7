"""Store operations for the feedback API: regIds and aliases that no longer reach a device.

A regId becomes invalid when its device unregisters (its aliases with it) or when a send names a
regId the app does not have; an alias when a send names one the app does not have. The app
fetches them at most ``limit`` at a time and each is deleted in the transaction that returns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidings.store.ops import Tx

REGID = "regid"
ALIAS = "alias"
MAX_TARGET = 256  # longer strings were refused by the API and are not worth recording


def record_invalid(tx: Tx, app_id: str, kind: str, targets: Sequence[str], now: int) -> None:
    tx.many(
        "INSERT INTO invalid_targets (app_id, kind, target, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        [(app_id, kind, t, now) for t in dict.fromkeys(targets) if len(t) <= MAX_TARGET],
    )


def forget_invalid(tx: Tx, app_id: str, kind: str, target: str) -> None:
    """A target that works again (an alias set anew) is no longer reported."""
    tx.execute(
        "DELETE FROM invalid_targets WHERE app_id = ? AND kind = ? AND target = ?",
        (app_id, kind, target),
    )


def take_invalid(tx: Tx, app_id: str, kind: str, limit: int) -> list[str]:
    """The oldest ``limit`` invalid targets of a kind, deleted as they are returned."""
    rows = tx.all(
        "SELECT target FROM invalid_targets WHERE app_id = ? AND kind = ?"
        " ORDER BY created_at, target LIMIT ?",
        (app_id, kind, limit),
    )
    found = [str(r[0]) for r in rows]
    tx.many(
        "DELETE FROM invalid_targets WHERE app_id = ? AND kind = ? AND target = ?",
        [(app_id, kind, t) for t in found],
    )
    return found

"""Store operations for delivery receipts (``extra.callback``).

A receipt row is written in the transaction of its event (a send's unknown targets, an ack, a
click) when the message asked for that event type, so an event is never reported without having
happened, nor lost once committed. The receipt sender reads due rows, POSTs them in batches and
deletes them, or pushes ``next_at`` back after a failure.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tidings import ids
from tidings.core.models import Receipt

if TYPE_CHECKING:
    from tidings.store.ops import Tx

DELIVERED = 1
CLICKED = 2
INVALID_TARGET = 16
PUSH_DISABLED = 32
FILTERED = 64
EXCEED_QUOTA = 128
EXPIRED = 1024
DEFAULT_TYPES = DELIVERED | CLICKED


def add_receipt(
    tx: Tx,
    app_id: str,
    msg_id: str,
    kind: int,
    targets: Sequence[str],
    now: int,
    callback: tuple[str | None, str | None, int, str | None],
    extra: dict[str, str] | None = None,
) -> None:
    """Queue a receipt of ``kind`` if the message's callback (url, param, types, jobkey) asks."""
    url, param, types, jobkey = callback
    if not url or not types & kind or not targets:
        return
    tx.execute(
        "INSERT INTO receipts (receipt_id, app_id, url, msg_id, type, targets, jobkey, param, at,"
        " next_at, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ids.trace_id(),
            app_id,
            url,
            msg_id,
            kind,
            ",".join(targets),
            jobkey,
            param,
            now,
            now,
            json.dumps(extra, sort_keys=True) if extra else None,
        ),
    )


def claim_receipts(tx: Tx, now: int, limit: int, lease_ms: int) -> list[Receipt]:
    """Take up to ``limit`` due receipts for ``lease_ms``: another node will not send them
    meanwhile (the outer ``next_at`` check is re-evaluated on a row another node just updated);
    if this node dies, they are due again when the lease ends."""
    rows = tx.all(
        "UPDATE receipts SET next_at = ? WHERE next_at <= ? AND receipt_id IN"
        " (SELECT receipt_id FROM receipts WHERE next_at <= ? ORDER BY next_at LIMIT ?)"
        " RETURNING receipt_id, app_id, url, msg_id, type, targets, jobkey, param, at, attempts,"
        " extra",
        (now + lease_ms, now, now, limit),
    )
    return sorted((Receipt(*r) for r in rows), key=lambda r: (r.at, r.receipt_id))


def due_receipts(tx: Tx, now: int, limit: int) -> list[Receipt]:
    rows = tx.all(
        "SELECT receipt_id, app_id, url, msg_id, type, targets, jobkey, param, at, attempts,"
        " extra FROM receipts WHERE next_at <= ? ORDER BY next_at, receipt_id LIMIT ?",
        (now, limit),
    )
    return [Receipt(*r) for r in rows]


def receipts_sent(tx: Tx, receipt_ids: Sequence[str]) -> None:
    tx.many("DELETE FROM receipts WHERE receipt_id = ?", [(r,) for r in receipt_ids])


def receipts_failed(tx: Tx, receipt_ids: Sequence[str], next_at: int, max_attempts: int) -> int:
    """Count a failed attempt; drop receipts that used up ``max_attempts``. Returns how many."""
    tx.many(
        "UPDATE receipts SET attempts = attempts + 1, next_at = ? WHERE receipt_id = ?",
        [(next_at, r) for r in receipt_ids],
    )
    dropped = 0
    for r in receipt_ids:
        tx.execute("DELETE FROM receipts WHERE receipt_id = ? AND attempts >= ?", (r, max_attempts))
        dropped += tx.rowcount()
    return dropped


def receipt_key(tx: Tx, app_id: str) -> str:
    """The app's receipt signing key (``whsec_`` + base64), created on first use."""
    tx.execute(
        "INSERT INTO receipt_keys (app_id, secret) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (app_id, "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()),
    )
    row = tx.one("SELECT secret FROM receipt_keys WHERE app_id = ?", (app_id,))
    assert row is not None
    return str(row[0])

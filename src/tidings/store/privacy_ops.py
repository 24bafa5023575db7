"""Store operations for privacy: policy versions, the consent ledger, consent gating, erasure.

Written like ``ops.py``: plain functions over a ``Tx`` that both engines run. ``ops.py`` calls
:func:`consent_filter` and :func:`device_consented` to gate sends, catch-up and delivery.

The ledger is append-only and chained per app: every record carries the SHA-256 of the previous
record of the same app, so changing, deleting or reordering a row breaks the chain at that row.
Records name the device by a pseudonym (:func:`subject_of`), never by its regId, so the proof of
consent survives erasure without keeping the regId.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tidings.compliance.models import ConsentRecord, PolicyVersion
from tidings.store.batches import chunks, marks

if TYPE_CHECKING:
    from tidings.store.ops import Tx

GENESIS = "0" * 64
AGREED, WITHDRAWN, ERASED = "agreed", "withdrawn", "erased"


def subject_of(app_id: str, reg_id: str) -> str:
    """The pseudonymous device id used in the ledger (the regId itself is never stored there)."""
    return hashlib.sha256(f"tidings-consent\x00{app_id}\x00{reg_id}".encode()).hexdigest()[:40]


# --- policy versions ----------------------------------------------------------------------------


def add_policy_version(tx: Tx, p: PolicyVersion, make_current: bool) -> bool:
    if tx.one("SELECT 1 FROM apps WHERE app_id = ?", (p.app_id,)) is None:
        raise LookupError(p.app_id)
    tx.execute(
        "INSERT INTO policy_versions (app_id, version, url, published_at, requires_fresh_consent)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (p.app_id, p.version, p.url, p.published_at, int(p.requires_fresh_consent)),
    )
    added = tx.rowcount() > 0
    if make_current:
        tx.execute(
            "UPDATE apps SET privacy_policy_version = ? WHERE app_id = ?", (p.version, p.app_id)
        )
    return added


def policy_versions(tx: Tx, app_id: str) -> list[PolicyVersion]:
    rows = tx.all(
        "SELECT app_id, version, url, published_at, requires_fresh_consent FROM policy_versions"
        " WHERE app_id = ? ORDER BY published_at, version",
        (app_id,),
    )
    return [PolicyVersion(r[0], r[1], r[2], int(r[3]), bool(r[4])) for r in rows]


def accepted_versions(tx: Tx, app_id: str) -> set[str] | None:
    """Policy versions whose consent is valid now; None when the app is not gated.

    The current version is always accepted. When it does not require fresh consent, consent to
    the versions before it stays valid, back to the newest one that did require it.
    """
    row = tx.one("SELECT privacy_policy_version FROM apps WHERE app_id = ?", (app_id,))
    if row is None or row[0] is None:
        return None
    current = str(row[0])
    versions = policy_versions(tx, app_id)
    names = [v.version for v in versions]
    if current not in names:
        return {current}
    accepted: set[str] = set()
    for v in reversed(versions[: names.index(current) + 1]):
        accepted.add(v.version)
        if v.requires_fresh_consent:
            break
    return accepted


def consent_filter(tx: Tx, app_id: str, reg_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split devices into (may receive, filtered for lack of a valid consent)."""
    return split_by_consent(tx, reg_ids, accepted_versions(tx, app_id))


def split_by_consent(
    tx: Tx, reg_ids: Sequence[str], accepted: set[str] | None, lock: bool = False
) -> tuple[list[str], list[str]]:
    """:func:`consent_filter` with the app's :func:`accepted_versions` already read.

    ``lock`` (a send about to write to these devices' inboxes): on PostgreSQL the device rows
    are locked as they are read, in key order, so a withdrawal committing meanwhile is either
    seen here or waits, and then drops what this send queued; without it a send could queue
    for a device whose withdrawal had already dropped its inbox.
    """
    if accepted is None or not reg_ids:
        return list(reg_ids), []
    ok: set[str] = set()
    suffix = f" ORDER BY reg_id{tx.lock_rows}" if lock else ""
    for part in chunks(sorted(reg_ids)):  # in key order: neighbouring pages
        rows = tx.all(
            f"SELECT reg_id, consent_version FROM devices WHERE reg_id IN ({marks(len(part))})"
            + suffix,
            tuple(part),
        )
        ok.update(r[0] for r in rows if r[1] in accepted)
    return [r for r in reg_ids if r in ok], [r for r in reg_ids if r not in ok]


def device_consented(tx: Tx, reg_id: str) -> bool:
    row = tx.one(
        "SELECT d.app_id, d.consent_version, a.privacy_policy_version FROM devices d"
        " JOIN apps a ON a.app_id = d.app_id WHERE d.reg_id = ?",
        (reg_id,),
    )
    if row is None:
        return False
    if row[2] is None:
        return True
    accepted = accepted_versions(tx, str(row[0])) or set()
    return row[1] in accepted


def count_stat(tx: Tx, counts: dict[str, int], app_id: str, name: str) -> None:
    """Add per-message counters (e.g. ``filtered_consent``) so no message leaves the stats."""
    tx.many(
        "INSERT INTO message_counters (msg_id, app_id, name, value) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (msg_id, name) DO UPDATE SET value = message_counters.value + excluded.value",
        [(msg_id, app_id, name, n) for msg_id, n in counts.items() if n],
    )


def message_counters(tx: Tx, msg_id: str) -> dict[str, int]:
    rows = tx.all("SELECT name, value FROM message_counters WHERE msg_id = ?", (msg_id,))
    return {r[0]: int(r[1]) for r in rows}


# --- the ledger ---------------------------------------------------------------------------------


def record_hash(prev_hash: str, r: ConsentRecord) -> str:
    body = json.dumps(
        [r.app_id, r.seq, r.subject, r.policy_version, r.action, r.at, r.source, r.app_version],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append_consent(
    tx: Tx,
    app_id: str,
    subject: str,
    version: str,
    action: str,
    at: int,
    source: str,
    app_version: str,
) -> ConsentRecord:
    """Append one ledger record, chained to the app's previous one (the head row is locked)."""
    tx.execute(
        "INSERT INTO consent_heads (app_id, seq, hash) VALUES (?, 0, ?) ON CONFLICT DO NOTHING",
        (app_id, GENESIS),
    )
    head = tx.one(
        "UPDATE consent_heads SET seq = seq + 1 WHERE app_id = ? RETURNING seq, hash", (app_id,)
    )
    assert head is not None
    rec = ConsentRecord(
        app_id, int(head[0]), subject, version, action, at, source, app_version, str(head[1]), ""
    )
    digest = record_hash(rec.prev_hash, rec)
    tx.execute(
        "INSERT INTO consent_ledger (app_id, seq, subject, policy_version, action, at, source,"
        " app_version, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (app_id, rec.seq, subject, version, action, at, source, app_version, rec.prev_hash, digest),
    )
    tx.execute("UPDATE consent_heads SET hash = ? WHERE app_id = ?", (digest, app_id))
    return dataclasses.replace(rec, hash=digest)


_LEDGER_COLS = (
    "app_id, seq, subject, policy_version, action, at, source, app_version, prev_hash, hash"
)


def consent_records(tx: Tx, app_id: str, subject: str | None = None) -> list[ConsentRecord]:
    if subject is None:
        rows = tx.all(
            f"SELECT {_LEDGER_COLS} FROM consent_ledger WHERE app_id = ? ORDER BY seq", (app_id,)
        )
    else:
        rows = tx.all(
            f"SELECT {_LEDGER_COLS} FROM consent_ledger WHERE app_id = ? AND subject = ?"
            " ORDER BY seq",
            (app_id, subject),
        )
    return [
        ConsentRecord(r[0], int(r[1]), r[2], r[3], r[4], int(r[5]), r[6], r[7], r[8], r[9])
        for r in rows
    ]


def ledger_app_ids(tx: Tx) -> list[str]:
    return [r[0] for r in tx.all("SELECT app_id FROM consent_heads ORDER BY app_id")]


def consent_head(tx: Tx, app_id: str) -> tuple[int, str]:
    row = tx.one("SELECT seq, hash FROM consent_heads WHERE app_id = ?", (app_id,))
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def record_consent(
    tx: Tx, reg_id: str, version: str | None, agreed: bool, at: int, source: str
) -> ConsentRecord | None:
    """Agree to ``version`` or withdraw; updates the device and appends to the ledger.

    Returns None when the device does not exist. Withdrawal also drops the device's queued
    messages (counted as filtered), so nothing already queued reaches it afterwards.
    """
    row = tx.one(
        "SELECT app_id, consent_version, app_version FROM devices WHERE reg_id = ?", (reg_id,)
    )
    if row is None:
        return None
    app_id, current, app_version = str(row[0]), row[1], str(row[2])
    if agreed:
        assert version
        tx.execute(
            "UPDATE devices SET consent_version = ?, consent_at = ? WHERE reg_id = ?",
            (version, at, reg_id),
        )
        action = AGREED
    else:
        version = version or current or ""
        tx.execute(
            "UPDATE devices SET consent_version = NULL, consent_at = ? WHERE reg_id = ?",
            (at, reg_id),
        )
        drop_inbox(tx, app_id, reg_id)
        action = WITHDRAWN
    return append_consent(
        tx, app_id, subject_of(app_id, reg_id), version, action, at, source, app_version
    )


def drop_inbox(tx: Tx, app_id: str, reg_id: str) -> int:
    rows = tx.all("SELECT msg_id FROM inbox WHERE reg_id = ? AND msg_id IS NOT NULL", (reg_id,))
    counts: dict[str, int] = {}
    for (msg_id,) in rows:
        counts[msg_id] = counts.get(msg_id, 0) + 1
    count_stat(tx, counts, app_id, "filtered_consent")
    tx.execute("DELETE FROM inbox WHERE reg_id = ?", (reg_id,))
    return len(rows)


# --- data-subject rights ------------------------------------------------------------------------

_DEVICE_COLS = (
    "reg_id, app_id, uaid, account, sdk_name, sdk_version, app_version, locale, model,"
    " consent_version, consent_at, last_seq, log_cursor, dropped, created_at"
)


def export_device(tx: Tx, reg_id: str) -> dict[str, object] | None:
    """Everything Tidings holds about one device (regId), as plain JSON-ready values."""
    row = tx.one(f"SELECT {_DEVICE_COLS} FROM devices WHERE reg_id = ?", (reg_id,))
    if row is None:
        return None
    device = dict(zip([c.strip() for c in _DEVICE_COLS.split(",")], row, strict=True))
    app_id = str(row[1])
    inbox = [
        {"seq": int(seq), "msg_id": msg_id, "expires_at": int(exp), "message": body}
        for seq, msg_id, exp, body in tx.all(
            "SELECT i.seq, i.msg_id, i.expires_at, m.body FROM inbox i"
            " LEFT JOIN messages m ON m.msg_id = i.msg_id WHERE i.reg_id = ? ORDER BY i.seq",
            (reg_id,),
        )
    ]
    for item in inbox:
        if isinstance(item["message"], str):
            item["message"] = json.loads(item["message"])
    subject = subject_of(app_id, reg_id)
    return {
        "device": device,
        "aliases": sorted(
            r[0] for r in tx.all("SELECT alias FROM aliases WHERE reg_id = ?", (reg_id,))
        ),
        "topics": sorted(
            r[0] for r in tx.all("SELECT topic FROM topic_subs WHERE reg_id = ?", (reg_id,))
        ),
        "inbox": inbox,
        "consent_subject": subject,
        "consent_records": [dataclasses.asdict(r) for r in consent_records(tx, app_id, subject)],
    }


def _strip_targets(
    tx: Tx,
    table: str,
    key: str,
    where: str,
    app_id: str,
    names: set[str],
    joined: bool = False,
    keep: bool = False,
) -> None:
    """Take ``names`` out of the ``targets`` list (JSON, or comma-``joined``) of the app's rows
    of ``table``; a row left with none goes, unless ``keep``."""
    for row_id, targets in tx.all(
        f"SELECT {key}, targets FROM {table} WHERE app_id = ?{where}", (app_id,)
    ):
        listed = targets.split(",") if joined else json.loads(targets)
        kept = [t for t in listed if t not in names]
        if len(kept) == len(listed):
            continue
        if not kept and not keep:
            tx.execute(f"DELETE FROM {table} WHERE {key} = ?", (row_id,))
        else:
            text = ",".join(kept) if joined else json.dumps(kept)
            tx.execute(f"UPDATE {table} SET targets = ? WHERE {key} = ?", (text, row_id))


def erase_device(tx: Tx, reg_id: str, at: int) -> ConsentRecord | None:
    """Delete every row about the device; keep the pseudonymous consent proof (plus an
    ``erased`` record). Held review items lose the device's regId and aliases as targets."""
    row = tx.one("SELECT app_id, app_version, account FROM devices WHERE reg_id = ?", (reg_id,))
    if row is None:
        return None
    app_id, app_version, account = str(row[0]), str(row[1]), row[2]
    names = {reg_id} | {
        r[0] for r in tx.all("SELECT alias FROM aliases WHERE reg_id = ?", (reg_id,))
    }  # an alias belongs to one device; an account may be shared, and then stays
    if account and not tx.one(
        "SELECT 1 FROM devices WHERE app_id = ? AND account = ? AND reg_id <> ? LIMIT 1",
        (app_id, account, reg_id),
    ):
        names.add(str(account))
    # the device's regId, aliases and account leave every list of targets that holds them: held
    # messages, scheduled jobs (a job left with none goes) and queued receipts (likewise)
    _strip_targets(tx, "review_queue", "msg_id", " AND status = 'held'", app_id, names, keep=True)
    _strip_targets(tx, "scheduled_jobs", "job_id", " AND targets <> ''", app_id, names)
    _strip_targets(tx, "receipts", "receipt_id", "", app_id, names, joined=True)
    for table in ("aliases", "topic_subs", "inbox", "device_daily", "message_clicks"):
        tx.execute(f"DELETE FROM {table} WHERE reg_id = ?", (reg_id,))
    tx.execute("DELETE FROM devices WHERE reg_id = ?", (reg_id,))
    return append_consent(
        tx, app_id, subject_of(app_id, reg_id), "", ERASED, at, "api", app_version
    )

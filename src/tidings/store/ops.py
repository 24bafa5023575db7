"""Store operations, written once as plain functions over a :class:`Tx`.

Both engines run these: SQLite on its single writer thread (many operations per transaction,
each in a savepoint) and PostgreSQL on pooled connections (one transaction each). Every function
takes the transaction first and returns plain values or records from ``tidings.core.models``.
Ownership and idempotency live here, in unique keys and conditional updates, not in memory.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from tidings import ids
from tidings.core.filters import DeviceFilter
from tidings.core.models import (
    App,
    Delivery,
    Device,
    DeviceInfo,
    Message,
    TargetKind,
    UnicastResult,
)
from tidings.store import (
    ack_pages,
    ops_channels,
    ops_feedback,
    ops_filters,
    ops_limits,
    ops_receipts,
    ops_stats,
    privacy_ops,
)
from tidings.store.batches import chunks as _chunks
from tidings.store.batches import marks as _marks
from tidings.store.schema import MIGRATIONS

NEVER = 2**62  # expiry of the resync marker


class Tx(Protocol):
    """The little an operation needs from a database transaction (``?`` placeholders)."""

    lock_rows: str  # " FOR UPDATE" where rows read before an update must be locked, else ""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...
    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...
    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def rowcount(self) -> int: ...


# --- schema -------------------------------------------------------------------------------------


def schema_version(tx: Tx) -> int:
    row = tx.one("SELECT max(version) FROM schema_version")
    return int(row[0]) if row and row[0] is not None else 0


def migrate(tx: Tx, dialect: str = "sqlite") -> int:
    """Apply every migration newer than the database; return the resulting version."""
    tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY)")
    applied = {int(r[0]) for r in tx.all("SELECT version FROM schema_version")}
    for version, statements in MIGRATIONS:  # by set, not by max: branches merge out of order
        if version in applied:
            continue
        for sql in statements:
            sqlite = dialect == "sqlite"
            sql = sql.replace("{without_rowid}", " WITHOUT ROWID" if sqlite else "")
            tx.execute(sql.replace("{blob}", "BLOB" if sqlite else "BYTEA"))
        tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        applied.add(version)
    return max(applied, default=0)


# --- apps ---------------------------------------------------------------------------------------

_APP_COLS = (
    "app_id, name, package, app_key_hash, secret_hash, privacy_policy_version, created_at, region"
)


def create_app(tx: Tx, app: App) -> None:
    tx.execute(
        f"INSERT INTO apps ({_APP_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            app.app_id,
            app.name,
            app.package,
            app.app_key_hash,
            app.secret_hash,
            app.privacy_policy_version,
            app.created_at,
            app.region,
        ),
    )


def mirror_app(tx: Tx, app: App) -> None:
    """The app's row in its region's store: what the region's operations join on, never its
    credentials (those stay in the control store, where every request is authenticated)."""
    if app_by_id(tx, app.app_id) is None:
        blank = dataclasses.replace(app, app_key_hash="", secret_hash="-" + app.app_id)
        create_app(tx, blank)


def app_by_secret_hash(tx: Tx, secret_hash: str) -> App | None:
    row = tx.one(f"SELECT {_APP_COLS} FROM apps WHERE secret_hash = ?", (secret_hash,))
    return App(*row) if row else None


def app_by_id(tx: Tx, app_id: str) -> App | None:
    row = tx.one(f"SELECT {_APP_COLS} FROM apps WHERE app_id = ?", (app_id,))
    return App(*row) if row else None


def app_by_package(tx: Tx, package: str) -> App | None:
    row = tx.one(f"SELECT {_APP_COLS} FROM apps WHERE package = ?", (package,))
    return App(*row) if row else None


def list_apps(tx: Tx) -> list[App]:
    return [App(*r) for r in tx.all(f"SELECT {_APP_COLS} FROM apps ORDER BY created_at")]


# --- devices ------------------------------------------------------------------------------------


def register_device(tx: Tx, app_id: str, uaid: str, info: DeviceInfo, now: int) -> tuple[str, int]:
    """Return the device's regId for this app, creating it on first registration, and its slot
    for log cursors (:mod:`tidings.store.ack_pages`).

    One regId per (device, app): registering again refreshes what the SDK reported and keeps the
    regId. A new device starts at the app's current broadcast log head, so it does not receive
    broadcasts sent before it existed.
    """
    row = tx.one(
        "SELECT reg_id, ack_slot FROM devices WHERE app_id = ? AND uaid = ?", (app_id, uaid)
    )
    fields = (
        info.sdk_name,
        info.sdk_version,
        info.app_version,
        info.locale,
        info.model,
    )
    if row:
        reg_id = str(row[0])
        slot = ack_pages.assign_slot(tx, app_id) if row[1] is None else int(row[1])
        tx.execute(
            "UPDATE devices SET sdk_name = ?, sdk_version = ?, app_version = ?, locale = ?,"
            " model = ?, ack_slot = ? WHERE reg_id = ?",
            (*fields, slot, reg_id),
        )
    else:
        reg_id = ids.reg_id()
        slot = ack_pages.assign_slot(tx, app_id)
        tx.execute(
            "INSERT INTO devices (reg_id, app_id, uaid, sdk_name, sdk_version, app_version, locale,"
            " model, log_cursor, ack_slot, created_at)"
            " SELECT ?, ?, ?, ?, ?, ?, ?, ?, log_head, ?, ? FROM apps WHERE app_id = ?",
            (reg_id, app_id, uaid, *fields, slot, now, app_id),
        )
    if info.consent_version is not None:
        current = tx.one("SELECT consent_version FROM devices WHERE reg_id = ?", (reg_id,))
        if current is not None and current[0] != info.consent_version:  # a change: ledger it
            privacy_ops.record_consent(
                tx, reg_id, info.consent_version, True, info.consent_at or now, "sdk"
            )
    return reg_id, slot


def uaid_known(tx: Tx, uaid: str) -> bool:
    """An identity this server issued: a device's, or a browser's with Web Push channels."""
    if tx.one("SELECT 1 FROM devices WHERE uaid = ? LIMIT 1", (uaid,)) is not None:
        return True
    return tx.one("SELECT 1 FROM webpush_channels WHERE uaid = ? LIMIT 1", (uaid,)) is not None


def unregister_device(tx: Tx, reg_id: str, now: int = 0) -> bool:
    """Forget a device; its regId and aliases are reported by the feedback API from now on."""
    row = tx.one("SELECT app_id FROM devices WHERE reg_id = ?", (reg_id,))
    if row is not None:
        aliases = [r[0] for r in tx.all("SELECT alias FROM aliases WHERE reg_id = ?", (reg_id,))]
        ops_feedback.record_invalid(tx, row[0], ops_feedback.REGID, [reg_id], now)
        ops_feedback.record_invalid(tx, row[0], ops_feedback.ALIAS, aliases, now)
    for table in ("aliases", "topic_subs", "inbox"):
        tx.execute(f"DELETE FROM {table} WHERE reg_id = ?", (reg_id,))
    tx.execute("DELETE FROM devices WHERE reg_id = ?", (reg_id,))
    return tx.rowcount() > 0


def get_device(tx: Tx, reg_id: str) -> Device | None:
    row = tx.one(
        "SELECT reg_id, app_id, uaid, account, sdk_name, sdk_version, app_version, locale, model,"
        " consent_version, consent_at, last_seq, log_cursor, dropped, ack_slot FROM devices"
        " WHERE reg_id = ?",
        (reg_id,),
    )
    if not row:
        return None
    aliases = tuple(r[0] for r in tx.all("SELECT alias FROM aliases WHERE reg_id = ?", (reg_id,)))
    topics = tuple(r[0] for r in tx.all("SELECT topic FROM topic_subs WHERE reg_id = ?", (reg_id,)))
    slot = row[14]
    acked = ack_pages.read(tx, row[1], [int(slot)])[int(slot)] if slot is not None else 0
    info = DeviceInfo(*row[4:11])
    return Device(
        reg_id=row[0],
        app_id=row[1],
        uaid=row[2],
        account=row[3],
        info=info,
        last_seq=row[11],
        log_cursor=max(int(row[12]), acked),
        dropped=row[13],
        aliases=tuple(sorted(aliases)),
        topics=tuple(sorted(topics)),
    )


def set_alias(tx: Tx, app_id: str, reg_id: str, alias: str) -> None:
    """An alias names one device of an app; setting it on another device moves it there."""
    tx.execute(
        "INSERT INTO aliases (app_id, alias, reg_id) VALUES (?, ?, ?)"
        " ON CONFLICT (app_id, alias) DO UPDATE SET reg_id = excluded.reg_id",
        (app_id, alias, reg_id),
    )
    ops_feedback.forget_invalid(tx, app_id, ops_feedback.ALIAS, alias)


def unset_alias(tx: Tx, app_id: str, reg_id: str, alias: str) -> bool:
    tx.execute(
        "DELETE FROM aliases WHERE app_id = ? AND alias = ? AND reg_id = ?", (app_id, alias, reg_id)
    )
    return tx.rowcount() > 0


def set_account(tx: Tx, reg_id: str, account: str | None) -> None:
    tx.execute("UPDATE devices SET account = ? WHERE reg_id = ?", (account, reg_id))


def subscribe(tx: Tx, app_id: str, reg_ids: Sequence[str], topic: str) -> None:
    tx.many(
        "INSERT INTO topic_subs (app_id, topic, reg_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [(app_id, topic, r) for r in reg_ids],
    )


def unsubscribe(tx: Tx, app_id: str, reg_ids: Sequence[str], topic: str) -> None:
    tx.many(
        "DELETE FROM topic_subs WHERE app_id = ? AND topic = ? AND reg_id = ?",
        [(app_id, topic, r) for r in reg_ids],
    )


# --- target resolution --------------------------------------------------------------------------


def known_regids(tx: Tx, app_id: str, reg_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in _chunks(list(dict.fromkeys(reg_ids))):
        rows = tx.all(  # by primary key only (see ops_delivery.catch_up_to)
            f"SELECT reg_id, app_id FROM devices WHERE reg_id IN ({_marks(len(part))})", part
        )
        found.update(r[0] for r in rows if r[1] == app_id)
    return found


def resolve_aliases(tx: Tx, app_id: str, aliases: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in _chunks(list(dict.fromkeys(aliases))):
        rows = tx.all(
            "SELECT alias, reg_id FROM aliases WHERE app_id = ?"
            f" AND alias IN ({_marks(len(part))})",
            (app_id, *part),
        )
        found.update((r[0], r[1]) for r in rows)
    return found


def resolve_accounts(tx: Tx, app_id: str, accounts: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in _chunks(list(dict.fromkeys(accounts))):
        rows = tx.all(
            f"SELECT account, reg_id FROM devices WHERE app_id = ?"
            f" AND account IN ({_marks(len(part))}) ORDER BY reg_id",
            (app_id, *part),
        )
        for account, reg_id in rows:
            found.setdefault(account, []).append(reg_id)
    return found


def resolve_targets(
    tx: Tx, app_id: str, kind: TargetKind, targets: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Map regIds / aliases / accounts to regIds; return (reg_ids, unknown targets)."""
    if kind is TargetKind.REGID:
        known = known_regids(tx, app_id, targets)
        good = [t for t in dict.fromkeys(targets) if t in known]
        return good, [t for t in targets if t not in known]
    if kind is TargetKind.ALIAS:
        by_alias = resolve_aliases(tx, app_id, targets)
        regs = list(dict.fromkeys(by_alias[t] for t in targets if t in by_alias))
        return regs, [t for t in targets if t not in by_alias]
    if kind is TargetKind.ACCOUNT:
        by_account = resolve_accounts(tx, app_id, targets)
        regs = list(dict.fromkeys(r for t in targets for r in by_account.get(t, ())))
        return regs, [t for t in targets if t not in by_account]
    raise ValueError(f"not a unicast target kind: {kind}")


# --- messages and inboxes -----------------------------------------------------------------------


def _insert_message(tx: Tx, m: Message, log_offset: int | None) -> None:
    tx.execute(
        "INSERT INTO messages (msg_id, app_id, kind, body, topics, topic_op, created_at,"
        " expires_at, log_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            m.msg_id,
            m.app_id,
            m.kind.value,
            m.notification.to_json(),
            json.dumps(list(m.topics)) if m.topics else "",
            m.topic_op.value,
            m.created_at,
            m.expires_at,
            log_offset,
        ),
    )


def _push_inbox(tx: Tx, reg_id: str, items: Sequence[tuple[str, int]], cap: int) -> tuple[int, int]:
    """Append (msg_id, expires_at) items to one device's inbox.

    Returns (the last sequence number used, how many old entries the backlog cap dropped);
    (0, 0) for an unknown device.
    """
    row = tx.one(
        "UPDATE devices SET last_seq = last_seq + ? WHERE reg_id = ? RETURNING last_seq",
        (len(items), reg_id),
    )
    if row is None:
        return 0, 0
    last = int(row[0])
    first = last - len(items) + 1
    tx.many(
        "INSERT INTO inbox (reg_id, seq, msg_id, expires_at) VALUES (?, ?, ?, ?)",
        [(reg_id, first + i, msg_id, exp) for i, (msg_id, exp) in enumerate(items)],
    )
    oldest = tx.one("SELECT min(seq) FROM inbox WHERE reg_id = ?", (reg_id,))
    if oldest is None or oldest[0] is None or last - int(oldest[0]) + 1 <= cap:
        return last, 0
    return last, _enforce_cap(tx, reg_id, cap)


def _push_to_many(
    tx: Tx,
    reg_ids: Sequence[str],
    msg_id: str,
    expires: int,
    cap: int,
    body: str | None = None,
) -> dict[str, list[Delivery]]:
    """Append one message to many inboxes in a few statements per 500 devices (not per device).

    Returns the new entry per device, ready to send; an empty list for a device whose backlog
    cap dropped older entries (its inbox must be read again).
    """
    if len(reg_ids) < 3:
        out: dict[str, list[Delivery]] = {}
        for r in sorted(reg_ids):
            seq, dropped = _push_inbox(tx, r, [(msg_id, expires)], cap)
            if seq:
                out[r] = [] if dropped else [Delivery(r, seq, msg_id, body, expires)]
        return out
    if not tx.lock_rows:  # one writer (SQLite): take the sequence numbers in one statement
        last = _take_seqs(tx, reg_ids)
    else:  # lock the rows in a fixed order first: that avoids deadlocks between senders
        last = {}
        for part in _chunks(sorted(reg_ids)):
            rows = tx.all(
                f"SELECT reg_id, last_seq FROM devices WHERE reg_id IN ({_marks(len(part))})"
                f" ORDER BY reg_id{tx.lock_rows}",
                tuple(part),
            )
            last.update((r[0], int(r[1]) + 1) for r in rows)
        tx.many(
            "UPDATE devices SET last_seq = ? WHERE reg_id = ?", [(q, r) for r, q in last.items()]
        )
    return _append_inbox(tx, last, msg_id, expires, cap, body)


def _take_seqs(tx: Tx, reg_ids: Sequence[str], app_id: str | None = None) -> dict[str, int]:
    """Give each device (of ``app_id``, if given) its next sequence number, in one statement per
    500 devices; regId -> the number. Unknown devices (or another app's) are left out. SQLite
    only: PostgreSQL must lock the rows in a fixed order first (see :func:`_push_to_many`)."""
    app_sql, app_args = (" AND app_id = ?", (app_id,)) if app_id is not None else ("", ())
    last: dict[str, int] = {}
    for part in _chunks(sorted(set(reg_ids))):
        last.update(
            tx.all(
                "UPDATE devices SET last_seq = last_seq + 1"
                f" WHERE reg_id IN ({_marks(len(part))}){app_sql} RETURNING reg_id, last_seq",
                (*part, *app_args),
            )
        )
    return last


def _append_inbox(
    tx: Tx, last: Mapping[str, int], msg_id: str, expires: int, cap: int, body: str | None
) -> dict[str, list[Delivery]]:
    """The inbox rows of one message at the sequence numbers taken (:func:`_take_seqs`)."""
    tx.many(
        "INSERT INTO inbox (reg_id, seq, msg_id, expires_at) VALUES (?, ?, ?, ?)",
        [(r, q, msg_id, expires) for r, q in last.items()],
    )
    new = {r: [Delivery(r, q, msg_id, body, expires)] for r, q in last.items()}
    for r in _over_cap(tx, new, cap):
        if _enforce_cap(tx, r, cap):
            new[r] = []
    return new


def _over_cap(tx: Tx, new: dict[str, list[Delivery]], cap: int) -> list[str]:
    """Devices whose inbox may now hold more than ``cap`` messages (cheap check first).

    One ``min(seq)`` probe per device: the database answers it from the primary key alone, where
    a grouped query over many devices would walk every pending row.
    """
    suspects = []
    for reg_id, items in new.items():
        if not items or items[-1].seq <= cap:
            continue  # fewer than cap entries were ever queued for this device
        row = tx.one("SELECT min(seq) FROM inbox WHERE reg_id = ?", (reg_id,))
        if row is not None and row[0] is not None and items[-1].seq - int(row[0]) + 1 > cap:
            suspects.append(reg_id)
    return suspects


def _enforce_cap(tx: Tx, reg_id: str, cap: int) -> int:
    """Drop the oldest messages above ``cap`` and queue one resync marker in their place."""
    count = tx.one("SELECT count(*) FROM inbox WHERE reg_id = ? AND msg_id IS NOT NULL", (reg_id,))
    excess = int(count[0]) - cap if count else 0
    if excess <= 0:
        return 0
    victims = [
        int(r[0])
        for r in tx.all(
            "SELECT seq FROM inbox WHERE reg_id = ? AND msg_id IS NOT NULL ORDER BY seq LIMIT ?",
            (reg_id, excess),
        )
    ]
    tx.many("DELETE FROM inbox WHERE reg_id = ? AND seq = ?", [(reg_id, s) for s in victims])
    if tx.one("SELECT 1 FROM inbox WHERE reg_id = ? AND msg_id IS NULL", (reg_id,)) is None:
        # the marker takes a fresh sequence number, so a connected device that was already sent
        # the dropped messages still receives it
        row = tx.one(
            "UPDATE devices SET last_seq = last_seq + 1 WHERE reg_id = ? RETURNING last_seq",
            (reg_id,),
        )
        assert row is not None
        tx.execute(
            "INSERT INTO inbox (reg_id, seq, msg_id, expires_at) VALUES (?, ?, NULL, ?)",
            (reg_id, int(row[0]), NEVER),
        )
    tx.execute("UPDATE devices SET dropped = dropped + ? WHERE reg_id = ?", (excess, reg_id))
    return excess


_FEEDBACK_KINDS = {TargetKind.REGID: ops_feedback.REGID, TargetKind.ALIAS: ops_feedback.ALIAS}


def send_unicast(
    tx: Tx,
    message: Message,
    targets: Sequence[str],
    cap: int,
    store: bool = True,
    quotas: Mapping[str, int] | None = None,
    scheduled: bool = False,
) -> UnicastResult:
    """Resolve targets and, when any is known, commit the message and one inbox row per device.

    With ``store`` False (TTL 0, only_send_once) no message, inbox row, receipt or feedback is
    written: targets are resolved and filtered, and devices left out for consent are counted.
    ``quotas`` (category -> messages per device and UTC day, from the active limits) leaves out
    the devices that already acked that many messages of the message's category today.
    ``scheduled`` (a scheduled job firing: its sender heard success long ago) reports the devices
    left out even when none is sent to.
    """
    accepted = privacy_ops.accepted_versions(tx, message.app_id)  # None: no consent gate
    if (
        store
        and not tx.lock_rows
        and message.kind is TargetKind.REGID
        and not quotas
        and DeviceFilter.of(message.notification.extra) is None
        and accepted is None
    ):
        return _send_to_regids(tx, message, targets, cap)
    known, bad = resolve_targets(tx, message.app_id, message.kind, targets)
    feedback_kind = _FEEDBACK_KINDS.get(message.kind)
    if bad and feedback_kind and store:
        ops_feedback.record_invalid(tx, message.app_id, feedback_kind, bad, message.created_at)
    reg_ids, filtered = privacy_ops.split_by_consent(tx, known, accepted, lock=store)
    if filtered:
        privacy_ops.count_stat(
            tx, {message.msg_id: len(filtered)}, message.app_id, "filtered_consent"
        )
    unmatched: list[str] = []
    flt = DeviceFilter.of(message.notification.extra)
    if flt is not None and reg_ids:
        reg_ids, unmatched = ops_filters.split(tx, reg_ids, flt)
    over: dict[str, int] = {}
    quota = 0
    if quotas and reg_ids:
        over, quota = over_quota(tx, message, reg_ids, quotas)
        if over:
            reg_ids = [r for r in reg_ids if r not in over]
    if store and (scheduled or reg_ids or unmatched or filtered):  # report who was left out
        _left_out_receipts(tx, message, filtered, over, quota)
    if not (reg_ids or unmatched) or not store:
        return UnicastResult(
            tuple(reg_ids),
            tuple(bad),
            filtered=tuple(filtered),
            unmatched=tuple(unmatched),
            over_quota=tuple(over.items()),
            quota=quota,
        )
    _insert_message(tx, message, None)
    ops_stats.record_message(
        tx,
        message,
        raw=len(set(targets)),
        resolved=len(reg_ids),
        invalid=len(set(bad)),
        bad=bad,
        unmatched=unmatched,
    )
    body = message.notification.to_json()
    deliveries = _push_to_many(tx, reg_ids, message.msg_id, message.expires_at, cap, body)
    dropped = sum(1 for ds in deliveries.values() if not ds)
    return UnicastResult(
        tuple(reg_ids),
        tuple(bad),
        dropped,
        filtered=tuple(filtered),
        unmatched=tuple(unmatched),
        deliveries=deliveries,
        over_quota=tuple(over.items()),
        quota=quota,
    )


def over_quota(
    tx: Tx, message: Message, reg_ids: Sequence[str], quotas: Mapping[str, int]
) -> tuple[dict[str, int], int]:
    """The devices at their quota for the message's category today (regId -> acked), the quota."""
    channel = message.notification.extra.get("channel_id")
    category = ops_channels.category_of(tx, message.app_id, channel)
    quota = quotas.get(category)
    if quota is None:
        return {}, 0
    day = ops_stats.day_of(message.created_at)
    counts = ops_limits.delivered_today(tx, reg_ids, day, category)
    return {r: n for r in reg_ids if (n := counts.get(r, 0)) >= quota}, quota


def _left_out_receipts(
    tx: Tx, message: Message, filtered: Sequence[str], over: Mapping[str, int], quota: int
) -> None:
    """Receipts for an accepted send: 32 (push disabled: no consent) and 128 (over quota)."""
    url, param, types = ops_stats.callback_of(message)
    callback = (url, param, types, message.jobkey)
    if not url or not types & (ops_receipts.PUSH_DISABLED | ops_receipts.EXCEED_QUOTA):
        return
    now = message.created_at
    if filtered:
        ops_receipts.add_receipt(
            tx, message.app_id, message.msg_id, ops_receipts.PUSH_DISABLED, filtered, now, callback
        )
    by_count: dict[int, list[str]] = {}
    for reg_id, n in over.items():
        by_count.setdefault(n, []).append(reg_id)
    for n, regs in sorted(by_count.items()):
        extra = {"ack": str(n), "quota": str(quota)}
        ops_receipts.add_receipt(
            tx,
            message.app_id,
            message.msg_id,
            ops_receipts.EXCEED_QUOTA,
            regs,
            now,
            callback,
            extra,
        )


def _send_to_regids(tx: Tx, message: Message, targets: Sequence[str], cap: int) -> UnicastResult:
    """:func:`send_unicast` to regIds of an app with no consent gate, without a device filter or
    quotas (SQLite): the statement that takes each device's sequence number also tells which
    targets are the app's devices, so they are not looked up first."""
    last = _take_seqs(tx, targets, message.app_id)
    reg_ids = [t for t in dict.fromkeys(targets) if t in last]
    bad = [t for t in targets if t not in last]
    if bad:
        ops_feedback.record_invalid(tx, message.app_id, ops_feedback.REGID, bad, message.created_at)
    if not reg_ids:
        return UnicastResult((), tuple(bad))
    _insert_message(tx, message, None)
    ops_stats.record_message(
        tx, message, raw=len(set(targets)), resolved=len(reg_ids), invalid=len(set(bad)), bad=bad
    )
    body = message.notification.to_json()
    deliveries = _append_inbox(tx, last, message.msg_id, message.expires_at, cap, body)
    dropped = sum(1 for ds in deliveries.values() if not ds)
    return UnicastResult(tuple(reg_ids), tuple(bad), dropped, deliveries=deliveries)


def send_unicast_batch(
    tx: Tx,
    items: Sequence[tuple[Message, Sequence[str]]],
    cap: int,
    quotas: Mapping[str, int] | None = None,
) -> list[UnicastResult]:
    """Several unicast messages in one transaction: all are committed, or none."""
    return [send_unicast(tx, message, targets, cap, quotas=quotas) for message, targets in items]


def append_log(tx: Tx, message: Message) -> int:
    """Commit a topic / multi-topic / all message once, in the app's log; return its offset."""
    row = tx.one(
        "UPDATE apps SET log_head = log_head + 1 WHERE app_id = ? RETURNING log_head",
        (message.app_id,),
    )
    if row is None:
        raise LookupError(message.app_id)
    offset = int(row[0])
    _insert_message(tx, message, offset)
    ops_stats.record_message(tx, message)
    return offset


def counts(tx: Tx) -> dict[str, int]:
    """Row counts per table (operations and tests)."""
    out = {}
    for table in ("apps", "devices", "aliases", "topic_subs", "messages", "inbox"):
        row = tx.one(f"SELECT count(*) FROM {table}")
        out[table] = int(row[0]) if row else 0
    return out

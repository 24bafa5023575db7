"""Store operations of delivery: broadcast catch-up, reading an inbox, acks, expiry.

Written like ``ops.py`` (plain functions over a :class:`~tidings.store.ops.Tx`), split from it to
keep modules small: these are the hot path of the gateway.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tidings.core.models import (
    Delivery,
    DeviceInfo,
    Message,
    Notification,
    TargetKind,
    TopicOp,
)
from tidings.core.topics import matches
from tidings.store import ops_filters, ops_stats, privacy_ops
from tidings.store.ops import (
    CHUNK,
    Tx,
    _chunks,
    _enforce_cap,
    _left_out_receipts,
    _marks,
    _over_cap,
    over_quota,
)


def catch_up(
    tx: Tx,
    app_id: str,
    reg_ids: Sequence[str],
    now: int,
    cap: int,
    quotas: Mapping[str, int] | None = None,
) -> dict[str, list[Delivery]]:
    """Copy unexpired log messages past each device's cursor into its inbox, if it matches them.

    Returns the new inbox entries per device, ready to send (an empty list: new entries, but
    read them from the inbox, the backlog cap dropped some). Runs when a device connects and,
    for connected devices, when the log grows: a broadcast costs O(1) writes at send time and one
    row per device only for devices that actually come to fetch it. Done in batches: a few
    statements per 500 devices, not per device. With ``quotas`` (the active per-device daily
    quotas), devices at their quota for a message's category are left out of it (receipt 128).
    """
    head_row = tx.one("SELECT log_head FROM apps WHERE app_id = ?", (app_id,))
    if head_row is None:
        return {}
    head = int(head_row[0])
    devices: dict[str, tuple[int, int]] = {}  # reg_id -> (log_cursor, last_seq)
    for part in _chunks(sorted(set(reg_ids))):
        # by primary key only: with app_id in the WHERE clause SQLite picks the (app_id, account)
        # index for long IN lists and walks every device of the app once per chunk
        rows = tx.all(
            "SELECT reg_id, app_id, log_cursor, last_seq FROM devices"
            f" WHERE reg_id IN ({_marks(len(part))}) ORDER BY reg_id{tx.lock_rows}",
            part,
        )
        devices.update(
            (r[0], (int(r[2]), int(r[3]))) for r in rows if r[1] == app_id and int(r[2]) < head
        )
    if not devices:
        return {}
    low = min(cursor for cursor, _ in devices.values())
    entries = [
        (
            msg_id,
            int(offset),
            TargetKind(kind),
            tuple(json.loads(topics)) if topics else (),
            TopicOp(op),
            int(expires),
            body,
            int(created),
        )
        for msg_id, offset, kind, topics, op, expires, body, created in tx.all(
            "SELECT msg_id, log_offset, kind, topics, topic_op, expires_at, body, created_at"
            " FROM messages WHERE app_id = ? AND log_offset > ? AND log_offset <= ?"
            " AND expires_at > ? ORDER BY log_offset",
            (app_id, low, head, now),
        )
    ]
    at_quota = _broadcast_quotas(tx, app_id, entries, list(devices), quotas) if quotas else {}
    over_hit: dict[str, dict[str, int]] = {}
    wanted_topics = sorted({t for e in entries for t in e[3]})
    subscribed = _subscriptions(tx, app_id, list(devices), wanted_topics) if wanted_topics else {}
    _, unconsented_list = privacy_ops.consent_filter(tx, app_id, sorted(devices))
    unconsented = set(unconsented_list)
    filtered: dict[str, int] = {}
    filters = ops_filters.log_filters(tx, app_id, low, head, now)
    infos = ops_filters.device_infos(tx, list(devices)) if filters else {}
    unmatched: dict[str, list[str]] = {}
    copies: collections.Counter[str] = collections.Counter()
    out: dict[str, list[Delivery]] = {}
    updates: list[tuple[int, int, str]] = []
    rows_in: list[tuple[str, int, str, int]] = []
    no_topics: set[str] = set()
    for reg_id, (cursor, last_seq) in devices.items():
        mine = subscribed.get(reg_id, no_topics)
        info = infos.get(reg_id, DeviceInfo()) if filters else None
        seq = last_seq
        got = []
        for msg_id, offset, kind, topics, op, expires, body, _ in entries:
            if offset > cursor and (kind is TargetKind.ALL or matches(kind, topics, op, mine)):
                if reg_id in unconsented:  # skipped for good, but counted
                    filtered[msg_id] = filtered.get(msg_id, 0) + 1
                    continue
                flt = filters.get(msg_id) if filters else None
                if flt is not None and info is not None and not flt.accepts(info):
                    unmatched.setdefault(msg_id, []).append(reg_id)  # device_condition_unmatch
                    continue
                over = at_quota.get(msg_id)
                if over is not None and reg_id in over[0]:  # at its daily quota: left out
                    over_hit.setdefault(msg_id, {})[reg_id] = over[0][reg_id]
                    continue
                seq += 1
                copies[msg_id] += 1
                got.append(Delivery(reg_id, seq, msg_id, body, expires))
                rows_in.append((reg_id, seq, msg_id, expires))
        updates.append((head, seq, reg_id))
        if got:
            out[reg_id] = got
    tx.many("UPDATE devices SET log_cursor = ?, last_seq = ? WHERE reg_id = ?", updates)
    tx.many("INSERT INTO inbox (reg_id, seq, msg_id, expires_at) VALUES (?, ?, ?, ?)", rows_in)
    privacy_ops.count_stat(tx, filtered, app_id, "filtered_consent")
    if copies or unmatched:
        ops_stats.record_copies(tx, app_id, copies, now, unmatched)
    for msg_id, hit in over_hit.items():
        _, quota, message = at_quota[msg_id]
        privacy_ops.count_stat(tx, {msg_id: len(hit)}, app_id, "over_quota")
        _left_out_receipts(tx, message, [], hit, quota)
    for reg_id in _over_cap(tx, out, cap):
        _enforce_cap(tx, reg_id, cap)
        out[reg_id] = []  # changed, but read it from the inbox: entries were dropped
    return out


def _broadcast_quotas(
    tx: Tx,
    app_id: str,
    entries: Sequence[tuple[Any, ...]],
    reg_ids: Sequence[str],
    quotas: Mapping[str, int],
) -> dict[str, tuple[dict[str, int], int, Message]]:
    """For each log message under a quota: the devices at their quota today, the quota and the
    message (for its receipts)."""
    out: dict[str, tuple[dict[str, int], int, Message]] = {}
    for msg_id, _, kind, topics, op, expires, body, created in entries:
        message = Message(
            msg_id, app_id, kind, Notification.from_json(body), created, expires, topics, op
        )
        over, quota = over_quota(tx, message, reg_ids, quotas)
        if over:
            out[msg_id] = (over, quota, message)
    return out


def _subscriptions(
    tx: Tx, app_id: str, reg_ids: Sequence[str], topics: Sequence[str]
) -> dict[str, set[str]]:
    """The subset of ``topics`` each device subscribes to (all its topics when there are many)."""
    few = len(topics) <= 100
    topic_sql = f" AND topic IN ({_marks(len(topics))})" if few else ""
    topic_args = tuple(topics) if few else ()
    subscribed: dict[str, set[str]] = {}
    for part in _chunks(reg_ids, CHUNK):
        rows = tx.all(
            f"SELECT reg_id, topic FROM topic_subs WHERE app_id = ?{topic_sql}"
            f" AND reg_id IN ({_marks(len(part))})",
            (app_id, *topic_args, *part),
        )
        for reg_id, topic in rows:
            subscribed.setdefault(reg_id, set()).add(topic)
    return subscribed


def pending(tx: Tx, reg_id: str, after_seq: int, now: int, limit: int) -> list[Delivery]:
    """Unexpired inbox entries of a device after ``after_seq``, in sequence order.

    Nothing for a device without a valid consent (checked at delivery time, too).
    """
    if not privacy_ops.device_consented(tx, reg_id):
        return []
    rows = tx.all(
        "SELECT i.seq, i.msg_id, m.body, i.expires_at FROM inbox i"
        " LEFT JOIN messages m ON m.msg_id = i.msg_id"
        " WHERE i.reg_id = ? AND i.seq > ? AND i.expires_at > ? ORDER BY i.seq LIMIT ?",
        (reg_id, after_seq, now, limit),
    )
    return [Delivery(reg_id, int(seq), msg_id, body, int(exp)) for seq, msg_id, body, exp in rows]


def ack(
    tx: Tx, acks: Sequence[tuple[str, int, str]], now: int = 0, per_device: bool = False
) -> int:
    """Delete acknowledged inbox entries: (reg_id, seq, msg_id or '' for the resync marker).

    Matching the message id too means a late ack can never delete a marker or message that
    took over the same sequence number. Each deleted message row counts once as delivered (a
    repeated ack deletes nothing and counts nothing), in the same transaction; ``per_device``
    (a quota is active) also counts it for the device's daily quota.
    """
    delivered: dict[str, list[str]] = {}
    for part in _chunks(list(dict.fromkeys(acks)), 250):
        # an OR of primary-key matches: both engines use the key for each term (row-value IN
        # lists make SQLite scan the table)
        match = " OR ".join(["(reg_id = ? AND seq = ? AND coalesce(msg_id, '') = ?)"] * len(part))
        rows = tx.all(
            f"DELETE FROM inbox WHERE {match} RETURNING msg_id, reg_id",
            [v for item in part for v in item],
        )
        for msg_id, reg_id in rows:
            if msg_id is not None:
                delivered.setdefault(msg_id, []).append(reg_id)
    if delivered:
        ops_stats.record_delivered(tx, delivered, now, per_device)
    return len(acks)


def topic_members(
    tx: Tx,
    app_id: str,
    reg_ids: Sequence[str],
    kind: TargetKind,
    topics: Sequence[str],
    op: TopicOp,
) -> list[str]:
    """Which of these devices an unstored (TTL 0) broadcast reaches."""
    reg_ids = privacy_ops.consent_filter(tx, app_id, reg_ids)[0]
    if kind is TargetKind.ALL:
        return list(reg_ids)
    subscribed = _subscriptions(tx, app_id, list(reg_ids), list(topics))
    return [r for r in reg_ids if matches(kind, topics, op, subscribed.get(r, set()))]


def sweep_expired(tx: Tx, now: int) -> tuple[int, int]:
    """Delete expired inbox entries and messages; return how many of each.

    Messages that expired undelivered on some devices get a receipt (type 1024) if they asked.
    """
    rows = tx.all("DELETE FROM inbox WHERE expires_at <= ? RETURNING msg_id, reg_id", (now,))
    inbox = len(rows)
    expired: dict[str, list[str]] = {}
    for msg_id, reg_id in rows:
        if msg_id is not None:
            expired.setdefault(msg_id, []).append(reg_id)
    if expired:
        ops_stats.record_expired(tx, expired, now)
    tx.execute("DELETE FROM messages WHERE expires_at <= ?", (now,))
    return inbox, tx.rowcount()

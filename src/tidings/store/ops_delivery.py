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
    LogEntry,
    Message,
    Notification,
    TargetKind,
    TopicOp,
)
from tidings.core.topics import matches
from tidings.store import ack_pages, ops_filters, ops_stats, ops_webpush, privacy_ops
from tidings.store.batches import chunks, marks
from tidings.store.ops import (
    Tx,
    _enforce_cap,
    _left_out_receipts,
    _over_cap,
    over_quota,
)


def catch_up_to(
    tx: Tx,
    app_id: str,
    reg_ids: Sequence[str],
    now: int,
    cap: int,
    quotas: Mapping[str, int] | None = None,
) -> tuple[int, dict[str, list[Delivery]]]:
    """Copy unexpired log messages past each device's cursor into its inbox, if it matches them.

    Returns the log head the devices' cursors now stand at (0: unknown app) and the new inbox
    entries per device, ready to send (an empty list: new entries, but read them from the inbox,
    the backlog cap dropped some). Runs when a device connects and,
    for connected devices that do not take broadcasts from the log (:func:`log_fanout`), when
    the log grows: a broadcast costs O(1) writes at send time and one row per device only for
    devices that actually come to fetch it. Done in batches: a few statements per 500 devices,
    not per device. With ``quotas`` (the active per-device daily quotas), devices at their quota
    for a message's category are left out of it (receipt 128).
    """
    head_row = tx.one("SELECT log_head FROM apps WHERE app_id = ?", (app_id,))
    if head_row is None:
        return 0, {}
    head = int(head_row[0])
    devices: dict[str, tuple[int, int]] = {}  # reg_id -> (log_cursor, last_seq)
    slots: dict[str, int] = {}  # reg_id -> its slot for log cursors (ack_pages)
    for part in chunks(sorted(set(reg_ids))):
        # by primary key only: with app_id in the WHERE clause SQLite picks the (app_id, account)
        # index for long IN lists and walks every device of the app once per chunk
        rows = tx.all(
            "SELECT reg_id, app_id, log_cursor, last_seq, ack_slot FROM devices"
            f" WHERE reg_id IN ({marks(len(part))}) ORDER BY reg_id{tx.lock_rows}",
            part,
        )
        found = {r[0]: (int(r[2]), int(r[3])) for r in rows if r[1] == app_id}
        part_slots = {r[0]: int(r[4]) for r in rows if r[1] == app_id and r[4] is not None}
        if part_slots:  # cursors moved by acks of broadcasts sent from the log (ack_log)
            acked = ack_pages.read(tx, app_id, part_slots.values())
            for reg_id, slot in part_slots.items():
                if acked[slot] > found[reg_id][0]:
                    found[reg_id] = (acked[slot], found[reg_id][1])
        slots.update(part_slots)
        devices.update((r, v) for r, v in found.items() if v[0] < head)
    if not devices:
        return head, {}
    chosen = _select(tx, app_id, {r: c for r, (c, _) in devices.items()}, head, now, quotas)
    out: dict[str, list[Delivery]] = {}
    updates: list[tuple[int, int, str]] = []
    rows_in: list[tuple[str, int, str, int]] = []
    for reg_id, (_, last_seq) in devices.items():
        seq = last_seq
        entries = chosen.get(reg_id)
        if entries:
            got = []
            for e in entries:
                seq += 1
                got.append(Delivery(reg_id, seq, e.msg_id, e.body, e.expires_at))
                rows_in.append((reg_id, seq, e.msg_id, e.expires_at))
            out[reg_id] = got
        updates.append((head, seq, reg_id))
    tx.many("UPDATE devices SET log_cursor = ?, last_seq = ? WHERE reg_id = ?", updates)
    # the slots too: a late ack of a log broadcast this passed must not move or count (ack_log)
    ack_pages.raise_to(tx, app_id, {slots[r]: head for r in devices if r in slots})
    tx.many("INSERT INTO inbox (reg_id, seq, msg_id, expires_at) VALUES (?, ?, ?, ?)", rows_in)
    for reg_id in _over_cap(tx, out, cap):
        _enforce_cap(tx, reg_id, cap)
        out[reg_id] = []  # changed, but read it from the inbox: entries were dropped
    return head, out


def log_fanout(
    tx: Tx,
    app_id: str,
    cursors: Mapping[str, int],
    now: int,
    quotas: Mapping[str, int] | None = None,
) -> tuple[int, dict[str, list[LogEntry]]]:
    """The log messages past each device's cursor that it is to get, to send from memory.

    For connected devices that are up to date with the log: ``cursors`` are where the gateway
    stands with each (it may be ahead of ``devices.log_cursor``, which moves only when the device
    acks, :func:`ack_log`). Nothing is written per device: no inbox row, no cursor move. The same
    checks as :func:`catch_up_to` choose the messages (topics, consent, device filters, quotas) and
    the same counters and receipts record the choice. Returns the log head evaluated up to.
    """
    head_row = tx.one("SELECT log_head FROM apps WHERE app_id = ?", (app_id,))
    if head_row is None:
        return 0, {}
    head = int(head_row[0])
    low, high = (min(cursors.values()), max(cursors.values())) if cursors else (head, head)
    if low >= head:
        return head, {}
    # usually every device is behind (C-level min / max instead of a pass over 20,000 devices)
    behind = cursors if high < head else {r: c for r, c in cursors.items() if c < head}
    return head, _select(tx, app_id, behind, head, now, quotas)


def _select(
    tx: Tx,
    app_id: str,
    cursors: Mapping[str, int],
    head: int,
    now: int,
    quotas: Mapping[str, int] | None,
) -> dict[str, list[LogEntry]]:
    """Per device, the unexpired log messages in (its cursor, head] it is to get, in log order.

    Messages a device is left out of are counted (no consent, device filters: receipts too;
    quota: receipt 128); those it gets count as copies (``resolved``, ``broadcast_recipients``).
    """
    low = min(cursors.values())
    entries = [
        (
            LogEntry(int(offset), msg_id, body, int(expires)),
            TargetKind(kind),
            tuple(json.loads(topics)) if topics else (),
            TopicOp(op),
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
    if not entries:
        return {}
    reg_ids = list(cursors)
    at_quota = _broadcast_quotas(tx, app_id, entries, reg_ids, quotas) if quotas else {}
    over_hit: dict[str, dict[str, int]] = {}
    wanted_topics = sorted({t for e in entries for t in e[2]})
    subscribed = _subscriptions(tx, app_id, reg_ids, wanted_topics) if wanted_topics else {}
    _, unconsented_list = privacy_ops.consent_filter(tx, app_id, reg_ids)
    unconsented = set(unconsented_list)
    filtered: dict[str, int] = {}
    filters = ops_filters.log_filters(tx, app_id, low, head, now)
    infos = ops_filters.device_infos(tx, reg_ids) if filters else {}
    unmatched: dict[str, list[str]] = {}
    copies: collections.Counter[str] = collections.Counter()
    out: dict[str, list[LogEntry]] = {}
    no_topics: set[str] = set()
    if not filters and not at_quota and all(e[1] is TargetKind.ALL for e in entries):
        # the common broadcast: what a device gets depends on its cursor and consent only
        out = _by_cursor(cursors, [e[0] for e in entries], unconsented, copies, filtered)
    else:  # per device: topics, device filters, quotas
        for reg_id, cursor in cursors.items():
            mine = subscribed.get(reg_id, no_topics)
            info = infos.get(reg_id, DeviceInfo()) if filters else None
            got = []
            for entry, kind, topics, op, _, _ in entries:
                if entry.offset > cursor and (
                    kind is TargetKind.ALL or matches(kind, topics, op, mine)
                ):
                    msg_id = entry.msg_id
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
                    copies[msg_id] += 1
                    got.append(entry)
            if got:
                out[reg_id] = got
    privacy_ops.count_stat(tx, filtered, app_id, "filtered_consent")
    if copies or unmatched:
        ops_stats.record_copies(tx, app_id, copies, now, unmatched)
    for msg_id, hit in over_hit.items():
        _, quota, message = at_quota[msg_id]
        privacy_ops.count_stat(tx, {msg_id: len(hit)}, app_id, "over_quota")
        _left_out_receipts(tx, message, [], hit, quota)
    return out


def _by_cursor(
    cursors: Mapping[str, int],
    entries: Sequence[LogEntry],
    unconsented: set[str],
    copies: collections.Counter[str],
    filtered: dict[str, int],
) -> dict[str, list[LogEntry]]:
    """:func:`_select` for messages to every device of the app with no filter and no quota:
    devices at the same cursor share one list (a fan-out's devices usually all stand at one)."""
    groups: dict[int, list[str]] = {}
    values = cursors.values()
    if min(values) == max(values):  # the usual fan-out: every device at one cursor
        groups[next(iter(values))] = list(cursors)
    else:
        for reg_id, cursor in cursors.items():
            groups.setdefault(cursor, []).append(reg_id)
    out: dict[str, list[LogEntry]] = {}
    for cursor, reg_ids in groups.items():
        got = [e for e in entries if e.offset > cursor]
        if not got:
            continue
        consented = [r for r in reg_ids if r not in unconsented] if unconsented else reg_ids
        skipped = len(reg_ids) - len(consented)
        for entry in got:
            if consented:
                copies[entry.msg_id] += len(consented)
            if skipped:  # skipped for good, but counted
                filtered[entry.msg_id] = filtered.get(entry.msg_id, 0) + skipped
        out.update(dict.fromkeys(consented, got))
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
    for entry, kind, topics, op, body, created in entries:
        message = Message(
            entry.msg_id,
            app_id,
            kind,
            Notification.from_json(body),
            created,
            entry.expires_at,
            topics,
            op,
        )
        over, quota = over_quota(tx, message, reg_ids, quotas)
        if over:
            out[entry.msg_id] = (over, quota, message)
    return out


def _subscriptions(
    tx: Tx, app_id: str, reg_ids: Sequence[str], topics: Sequence[str]
) -> dict[str, set[str]]:
    """The subset of ``topics`` each device subscribes to (all its topics when there are many)."""
    few = len(topics) <= 100
    topic_sql = f" AND topic IN ({marks(len(topics))})" if few else ""
    topic_args = tuple(topics) if few else ()
    subscribed: dict[str, set[str]] = {}
    for part in chunks(reg_ids):
        rows = tx.all(
            f"SELECT reg_id, topic FROM topic_subs WHERE app_id = ?{topic_sql}"
            f" AND reg_id IN ({marks(len(part))})",
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
    for part in chunks(list(dict.fromkeys(acks)), 250):
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


def ack_log(
    tx: Tx,
    app_id: str,
    moves: Mapping[str, tuple[int, int]],
    delivered: Sequence[tuple[str, int, str]],
    now: int = 0,
    per_device: bool = False,
) -> None:
    """Devices of the app acked broadcasts sent from the log (:func:`log_fanout`): move each
    one's cursor (regId → (slot, offset), :mod:`tidings.store.ack_pages`) to the offset (never
    back) and count the acked messages the move passes as delivered ((reg_id, offset, msg_id)),
    in one transaction: a crash before it commits means redelivery, not a loss. A message
    counts only if this move passes it: one the cursor had already passed (a catch-up copied it
    into the inbox meanwhile, and raised the slot) counts when that copy is acked.
    """
    moved_slots = ack_pages.raise_to(tx, app_id, {slot: c for slot, c in moves.values()})
    moved = {r for r, (slot, _) in moves.items() if slot in moved_slots}
    # A device whose cursor moved here had it at an earlier move of this gateway (which passed
    # only older entries) or where it registered (before anything was sent from the log): every
    # entry it passes now counts here, once.
    passed: dict[str, list[str]] = {}
    for reg_id, offset, msg_id in delivered:
        if reg_id in moved and offset <= moves[reg_id][1]:
            passed.setdefault(msg_id, []).append(reg_id)
    if passed:
        ops_stats.record_delivered(tx, passed, now, per_device)


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
    """Delete expired inbox entries and messages (Web Push ones too); return how many of each.

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
    messages = tx.rowcount()
    return inbox, messages + ops_webpush.sweep_expired(tx, now)

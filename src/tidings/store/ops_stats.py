"""Store operations for message statistics: per-message counters and per-day app counters.

Counters are exact: each is updated in the same transaction as the event it counts (a send's
resolved and invalid targets, a broadcast copied into an inbox, an ack that deleted an inbox row,
a device's first click on a message). Days are UTC days written ``yyyyMMdd``.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tidings.core.models import DAILY_COUNTERS, Message, MessageStats, TargetKind
from tidings.store import ops_channels, ops_limits, ops_receipts
from tidings.store.batches import chunks, marks

if TYPE_CHECKING:
    from tidings.store.ops import Tx

_STATS_COLS = (
    "msg_id, kind, created_at, ttl_ms, raw_counter, resolved, invalid_target, app_not_register,"
    " device_condition_unmatch, delivered, click, bar_closed"
)
_SUMS = (
    "sum(raw_counter), sum(resolved), sum(invalid_target), sum(app_not_register),"
    " sum(device_condition_unmatch), sum(delivered), sum(click), sum(bar_closed)"
)
_DAILY_COLUMNS = frozenset((*DAILY_COUNTERS, *(f"received_{c}" for c in ops_channels.CATEGORIES)))
_RECIPIENTS = {
    TargetKind.REGID: "regid_recipients",
    TargetKind.ALIAS: "alias_recipients",
    TargetKind.ACCOUNT: "useraccount_recipients",
}


def day_of(ms: int) -> str:
    """The UTC day (yyyyMMdd) of an epoch-milliseconds time."""
    return _day_name(ms // 86_400_000)


@functools.lru_cache(maxsize=64)
def _day_name(days: int) -> str:
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=days)).strftime("%Y%m%d")


def bump_daily(tx: Tx, app_id: str, day: str, counts: Mapping[str, int]) -> None:
    counts = {k: v for k, v in counts.items() if v}
    if not counts:
        return
    for name in counts:
        if name not in _DAILY_COLUMNS:
            raise ValueError(name)
    names = ", ".join(counts)
    updates = ", ".join(f"{n} = daily_stats.{n} + excluded.{n}" for n in counts)
    tx.execute(
        f"INSERT INTO daily_stats (app_id, day, {names}) VALUES (?, ?, {marks(len(counts))})"
        f" ON CONFLICT (app_id, day) DO UPDATE SET {updates}",
        (app_id, day, *counts.values()),
    )


def callback_of(m: Message) -> tuple[str | None, str | None, int]:
    """``extra.callback`` (url), ``extra.callback.param`` and the ``extra.callback.type`` mask."""
    url = m.notification.extra.get("callback") or None
    if url is None:
        return None, None, 0
    raw = m.notification.extra.get("callback.type")
    types = int(raw) if raw else ops_receipts.DEFAULT_TYPES
    return url, m.notification.extra.get("callback.param"), types


def record_message(
    tx: Tx,
    m: Message,
    raw: int = 0,
    resolved: int = 0,
    invalid: int = 0,
    bad: Sequence[str] = (),
    unmatched: Sequence[str] = (),
) -> None:
    """The stats row of a message just stored (a broadcast starts with nothing resolved)."""
    url, param, types = callback_of(m)
    tx.execute(
        "INSERT INTO message_stats (msg_id, app_id, kind, jobkey, created_at, ttl_ms,"
        " raw_counter, resolved, invalid_target, device_condition_unmatch, callback_url,"
        " callback_param, callback_type, category)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            m.msg_id,
            m.app_id,
            m.kind.value,
            m.jobkey,
            m.created_at,
            m.expires_at - m.created_at,
            raw,
            resolved,
            invalid,
            len(unmatched),
            url,
            param,
            types,
            ops_channels.category_of(tx, m.app_id, m.notification.extra.get("channel_id")),
        ),
    )
    if resolved and m.kind in _RECIPIENTS:
        bump_daily(
            tx,
            m.app_id,
            day_of(m.created_at),
            {"single_recipients": resolved, _RECIPIENTS[m.kind]: resolved},
        )
    callback = (url, param, types, m.jobkey)
    if bad:
        ops_receipts.add_receipt(
            tx,
            m.app_id,
            m.msg_id,
            ops_receipts.INVALID_TARGET,
            list(dict.fromkeys(bad)),
            m.created_at,
            callback,
        )
    if unmatched:
        ops_receipts.add_receipt(
            tx, m.app_id, m.msg_id, ops_receipts.FILTERED, unmatched, m.created_at, callback
        )


def record_copies(
    tx: Tx,
    app_id: str,
    copies: Mapping[str, int],
    now: int,
    unmatched: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Broadcasts copied into device inboxes by catch-up (msg_id -> number of devices), and the
    devices their device filters left out (msg_id -> regIds)."""
    tx.many(
        "UPDATE message_stats SET raw_counter = raw_counter + ?, resolved = resolved + ?"
        " WHERE msg_id = ?",
        [(n, n, msg_id) for msg_id, n in copies.items()],
    )
    bump_daily(tx, app_id, day_of(now), {"broadcast_recipients": sum(copies.values())})
    for msg_id, reg_ids in (unmatched or {}).items():
        row = tx.one(
            "UPDATE message_stats SET raw_counter = raw_counter + ?,"
            " device_condition_unmatch = device_condition_unmatch + ? WHERE msg_id = ?"
            " RETURNING callback_url, callback_param, callback_type, jobkey",
            (len(reg_ids), len(reg_ids), msg_id),
        )
        if row is not None:
            callback = (row[0], row[1], int(row[2]), row[3])
            ops_receipts.add_receipt(
                tx, app_id, msg_id, ops_receipts.FILTERED, reg_ids, now, callback
            )


def record_delivered(
    tx: Tx, delivered: Mapping[str, Sequence[str]], now: int, per_device: bool = False
) -> None:
    """Acked messages: msg_id -> the devices that acked it in this batch (each once). With
    ``per_device`` (a quota is active), each device's count of the day and category, too."""
    per_app: dict[tuple[str, str], int] = {}  # (app, category) -> delivered
    devices: dict[tuple[str, str], int] = {}  # (reg_id, category) -> delivered
    for msg_id, reg_ids in delivered.items():
        row = tx.one(
            "UPDATE message_stats SET delivered = delivered + ? WHERE msg_id = ?"
            " RETURNING app_id, callback_url, callback_param, callback_type, jobkey, category",
            (len(reg_ids), msg_id),
        )
        if row is not None:
            key = (str(row[0]), str(row[5]))
            per_app[key] = per_app.get(key, 0) + len(reg_ids)
            if per_device:
                for reg_id in reg_ids:
                    devices[(reg_id, key[1])] = devices.get((reg_id, key[1]), 0) + 1
            app_id = key[0]
            ops_receipts.add_receipt(
                tx,
                app_id,
                msg_id,
                ops_receipts.DELIVERED,
                reg_ids,
                now,
                (row[1], row[2], int(row[3]), row[4]),
            )
    day = day_of(now)
    for (app_id, category), n in sorted(per_app.items()):
        bump_daily(tx, app_id, day, {"received": n, f"received_{category}": n})
    if devices:
        ops_limits.count_delivered(tx, devices, day)


def record_expired(tx: Tx, expired: Mapping[str, Sequence[str]], now: int) -> None:
    """Messages whose time to live ran out before these devices got them (receipt type 1024)."""
    for part in chunks(list(expired)):
        rows = tx.all(
            "SELECT msg_id, app_id, callback_url, callback_param, callback_type, jobkey"
            f" FROM message_stats WHERE msg_id IN ({marks(len(part))})"
            " AND callback_url IS NOT NULL",
            tuple(part),
        )
        for msg_id, app_id, url, param, types, jobkey in rows:
            ops_receipts.add_receipt(
                tx,
                app_id,
                msg_id,
                ops_receipts.EXPIRED,
                expired[msg_id],
                now,
                (url, param, int(types), jobkey),
            )


def record_click(tx: Tx, app_id: str, reg_id: str, msg_id: str, now: int) -> bool:
    """Count a device's first click on a message of its app; repeated clicks count once."""
    row = tx.one(
        "SELECT callback_url, callback_param, callback_type, jobkey FROM message_stats"
        " WHERE msg_id = ? AND app_id = ?",
        (msg_id, app_id),
    )
    if row is None:
        return False
    tx.execute(
        "INSERT INTO message_clicks (msg_id, reg_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (msg_id, reg_id),
    )
    if tx.rowcount() == 0:
        return False
    tx.execute("UPDATE message_stats SET click = click + 1 WHERE msg_id = ?", (msg_id,))
    bump_daily(tx, app_id, day_of(now), {"click": 1})
    ops_receipts.add_receipt(
        tx,
        app_id,
        msg_id,
        ops_receipts.CLICKED,
        [reg_id],
        now,
        (row[0], row[1], int(row[2]), row[3]),
    )
    return True


def _stats(row: Sequence[object]) -> MessageStats:
    return MessageStats(
        str(row[0]),
        str(row[1]),
        *(int(v) for v in row[2:]),  # type: ignore[call-overload]
    )


def message_stats(tx: Tx, app_id: str, msg_id: str) -> MessageStats | None:
    row = tx.one(
        f"SELECT {_STATS_COLS} FROM message_stats WHERE app_id = ? AND msg_id = ?",
        (app_id, msg_id),
    )
    return _stats(row) if row else None


def jobkey_stats(tx: Tx, app_id: str, jobkey: str) -> MessageStats | None:
    """Every message of the app sent with this ``extra.jobkey``, counted together."""
    row = tx.one(
        f"SELECT count(*), min(created_at), max(ttl_ms), {_SUMS} FROM message_stats"
        " WHERE app_id = ? AND jobkey = ?",
        (app_id, jobkey),
    )
    if row is None or not row[0]:
        return None
    kinds = tx.all(
        "SELECT DISTINCT kind FROM message_stats WHERE app_id = ? AND jobkey = ?", (app_id, jobkey)
    )
    kind = str(kinds[0][0]) if len(kinds) == 1 else "mixed"
    return _stats((jobkey, kind, *row[1:]))


def stats_between(tx: Tx, app_id: str, begin: int, end: int, limit: int) -> list[MessageStats]:
    """The newest ``limit`` messages created in [begin, end], newest first."""
    rows = tx.all(
        f"SELECT {_STATS_COLS} FROM message_stats WHERE app_id = ? AND created_at >= ?"
        " AND created_at <= ? ORDER BY created_at DESC, msg_id DESC LIMIT ?",
        (app_id, begin, end, limit),
    )
    return [_stats(r) for r in rows]


def daily_stats(tx: Tx, app_id: str, first: str, last: str) -> dict[str, dict[str, int]]:
    """Counters per day (``yyyyMMdd``) from ``first`` to ``last``; no events, no row."""
    rows = tx.all(
        f"SELECT day, {', '.join(DAILY_COUNTERS)} FROM daily_stats"
        " WHERE app_id = ? AND day >= ? AND day <= ? ORDER BY day",
        (app_id, first, last),
    )
    return {
        str(r[0]): dict(zip(DAILY_COUNTERS, (int(v) for v in r[1:]), strict=True)) for r in rows
    }


def sweep_stats(tx: Tx, before: int) -> int:
    """Forget the traces (and click records) of messages created before ``before``."""
    tx.execute(
        "DELETE FROM message_clicks WHERE msg_id IN"
        " (SELECT msg_id FROM message_stats WHERE created_at < ?)",
        (before,),
    )
    tx.execute("DELETE FROM message_stats WHERE created_at < ?", (before,))
    return tx.rowcount()

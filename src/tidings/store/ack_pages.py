"""Durable log cursors of devices that take broadcasts from the app log, kept in pages.

A device acks each broadcast sent to it from the log (``ops_delivery.log_fanout``); its durable
cursor must move so that a reconnect or a restart does not send the acked broadcasts again. One
row per device made every broadcast to N connected devices cost N row updates (~2.5-7 µs each
on SQLite, the largest part of the server's work per delivery). Here each device has a slot,
numbered per app at its registration, and the cursors of ``SLOTS`` consecutive slots are one
row: an array of 64-bit little-endian integers. A broadcast's acks rewrite N / ``SLOTS`` rows.

A device's log cursor is the larger of ``devices.log_cursor`` (moved when a catch-up copies log
messages into its inbox, which also raises the slot here) and its slot's value. Slot numbers are
never reused, so a deleted device's stale value harms nobody; an app's pages go with the app.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from tidings.store.batches import chunks, marks

if TYPE_CHECKING:
    from tidings.store.ops import Tx

SLOTS = 250  # per page: 2,000 bytes, under PostgreSQL's out-of-line threshold (~2 KiB)
_EMPTY = bytes(8 * SLOTS)


def _decode(blob: bytes | memoryview) -> array.array[int]:
    cursors = array.array("q", bytes(blob))
    if sys.byteorder == "big":  # pragma: no cover - stored little-endian everywhere
        cursors.byteswap()
    return cursors


def _encode(cursors: array.array[int]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover
        cursors = array.array("q", cursors)
        cursors.byteswap()
    return cursors.tobytes()


def assign_slot(tx: Tx, app_id: str) -> int:
    """The next slot number of the app (its page created, so acks only ever update a row)."""
    row = tx.one(
        "UPDATE apps SET ack_slots = ack_slots + 1 WHERE app_id = ? RETURNING ack_slots", (app_id,)
    )
    if row is None:
        raise LookupError(app_id)
    slot = int(row[0]) - 1
    tx.execute(
        "INSERT INTO log_ack_pages (app_id, page, cursors) VALUES (?, ?, ?)"
        " ON CONFLICT (app_id, page) DO NOTHING",
        (app_id, slot // SLOTS, _EMPTY),
    )
    return slot


def _pages(tx: Tx, app_id: str, slots: Iterable[int]) -> dict[int, array.array[int]]:
    """The pages holding these slots (locked for update on PostgreSQL)."""
    wanted = sorted({s // SLOTS for s in slots})
    pages: dict[int, array.array[int]] = {}
    for part in chunks(wanted):
        for page, blob in tx.all(
            "SELECT page, cursors FROM log_ack_pages"
            f" WHERE app_id = ? AND page IN ({marks(len(part))})"
            f" ORDER BY page{tx.lock_rows}",
            (app_id, *part),
        ):
            pages[int(page)] = _decode(blob)
    return pages


def read(tx: Tx, app_id: str, slots: Iterable[int]) -> dict[int, int]:
    """The cursor of each slot (0 where none was recorded)."""
    slots = list(slots)
    pages = _pages(tx, app_id, slots)
    return {s: pages[s // SLOTS][s % SLOTS] if s // SLOTS in pages else 0 for s in slots}


def raise_to(tx: Tx, app_id: str, cursors: Mapping[int, int]) -> set[int]:
    """Move each slot's cursor up to the given offset (never down); the slots that moved."""
    pages = _pages(tx, app_id, cursors)
    moved: set[int] = set()
    changed: set[int] = set()
    for slot, cursor in cursors.items():
        page = pages.get(slot // SLOTS)
        if page is None:  # a slot is assigned with its page: only a deleted app has none
            continue
        i = slot % SLOTS
        if page[i] < cursor:
            page[i] = cursor
            moved.add(slot)
            changed.add(slot // SLOTS)
    tx.many(
        "UPDATE log_ack_pages SET cursors = ? WHERE app_id = ? AND page = ?",
        [(_encode(pages[p]), app_id, p) for p in sorted(changed)],
    )
    return moved

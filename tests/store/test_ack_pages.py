"""Log cursors kept in pages of slots (store/ack_pages.py), and the migration that made them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tidings.clock import ManualClock
from tidings.core.models import DeviceInfo
from tidings.store import ack_pages
from tidings.store.schema import MIGRATIONS
from tidings.store.sqlite import SQLiteEngine
from tidings.store.store import Store


async def test_slots_are_numbered_per_app_and_cursors_only_rise(store: Store) -> None:
    a = (await store.create_app("A", "com.example.a")).app.app_id
    b = (await store.create_app("B", "com.example.b")).app.app_id
    first = await store.register(a, "u0", DeviceInfo())
    assert first[1] == 0
    assert (await store.register(b, "u0", DeviceInfo()))[1] == 0  # per app
    assert await store.register(a, "u0", DeviceInfo()) == first  # registering again: same slot
    slots = [(await store.register(a, f"u{i}", DeviceInfo()))[1] for i in range(1, 601)]
    assert slots == list(range(1, 601))  # three pages: 0-249, 250-499, 500-749

    def raise_and_read(tx, cursors):  # type: ignore[no-untyped-def]
        moved = ack_pages.raise_to(tx, a, cursors)
        return moved, ack_pages.read(tx, a, [0, 249, 250, 600, 601])

    moved, got = await store.engine.write(raise_and_read, {249: 7, 250: 9, 600: 2**40})
    assert moved == {249, 250, 600}
    assert got == {0: 0, 249: 7, 250: 9, 600: 2**40, 601: 0}
    moved, got = await store.engine.write(raise_and_read, {249: 5, 250: 10, 0: 1})  # 249: lower
    assert moved == {250, 0}
    assert got == {0: 1, 249: 7, 250: 10, 600: 2**40, 601: 0}


async def test_deleting_an_app_deletes_its_pages(store: Store) -> None:
    new = await store.create_app("A", "com.example.a")
    await store.register(new.app.app_id, "u0", DeviceInfo())
    count = "SELECT count(*) FROM log_ack_pages WHERE app_id = ?"
    assert await store.engine.read(lambda tx: tx.one(count, (new.app.app_id,))[0]) == 1
    await store.delete_app_data(new.app.app_id)
    assert await store.engine.read(lambda tx: tx.one(count, (new.app.app_id,))[0]) == 0


async def test_migration_8_keeps_the_cursors_of_the_table_it_replaces(tmp_path: Path) -> None:
    path = tmp_path / "v7.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version BIGINT PRIMARY KEY)")
    for version, statements in MIGRATIONS:
        if version > 7:
            break
        for sql in statements:
            db.execute(sql.replace("{without_rowid}", " WITHOUT ROWID"))
        db.execute("INSERT INTO schema_version VALUES (?)", (version,))
    db.execute(
        "INSERT INTO apps (app_id, name, package, app_key_hash, secret_hash, created_at, log_head)"
        " VALUES ('app1', 'A', 'com.example.a', 'k', 's', 0, 9)"
    )
    for reg_id, cursor in (("r1", 3), ("r2", 5), ("r3", 1)):
        db.execute(
            "INSERT INTO devices (reg_id, app_id, uaid, log_cursor, created_at)"
            " VALUES (?, 'app1', ?, ?, 0)",
            (reg_id, "u" + reg_id, cursor),
        )
    db.executemany("INSERT INTO log_acks VALUES (?, ?)", [("r1", 6), ("r2", 4)])
    db.commit()
    db.close()
    store = Store(SQLiteEngine(path), clock=ManualClock(), backlog_cap=5)
    await store.start()
    try:
        cursors = {r: (await store.get_device(r)).log_cursor for r in ("r1", "r2", "r3")}  # type: ignore[union-attr]
        assert cursors == {"r1": 6, "r2": 5, "r3": 1}  # the larger of the two, as before
        reg_id, slot = await store.register("app1", "ur2", DeviceInfo())  # old device: a slot now
        assert (reg_id, slot) == ("r2", 0)
        await store.ack_log("app1", {"r2": (slot, 8)}, [])
        assert (await store.get_device("r2")).log_cursor == 8  # type: ignore[union-attr]
    finally:
        await store.close()

"""The SQLite engine copies the WAL back into the database file on its own thread."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tidings.store.sqlite import SQLiteEngine


async def test_commits_reach_the_database_file_without_the_writer_checkpointing(
    tmp_path: Path,
) -> None:
    engine = SQLiteEngine(tmp_path / "c.db")
    await engine.start()
    try:
        await engine.write(lambda tx: tx.execute("CREATE TABLE t (v BLOB)"))
        db = tmp_path / "c.db"
        before = db.stat().st_size
        for _ in range(20):
            await engine.write(lambda tx: tx.execute("INSERT INTO t VALUES (?)", (b"x" * 4096,)))
        deadline = time.monotonic() + 10
        while db.stat().st_size < before + 20 * 4096 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert db.stat().st_size >= before + 20 * 4096  # the rows' pages were copied back
        assert await engine.read(lambda tx: tx.one("SELECT count(*) FROM t")[0]) == 20
    finally:
        started = time.monotonic()
        await engine.close()
        assert time.monotonic() - started < 2  # closing does not wait out the pause


async def test_the_wal_stays_bounded_under_a_steady_stream_of_commits(tmp_path: Path) -> None:
    limit = 256 * 1024
    engine = SQLiteEngine(tmp_path / "w.db", wal_limit_bytes=limit)
    await engine.start()
    wal = tmp_path / "w.db-wal"
    try:
        await engine.write(lambda tx: tx.execute("CREATE TABLE t (v BLOB)"))
        largest = 0
        for _ in range(40):  # 40 rounds of 8 commits of 16 KiB: 5 MiB written within a second
            await asyncio.gather(
                *(
                    engine.write(lambda tx: tx.execute("INSERT INTO t VALUES (?)", (b"y" * 16384,)))
                    for _ in range(8)
                )
            )
            largest = max(largest, wal.stat().st_size)
        # at most the limit plus what the commits since the last copy added
        assert largest < limit + 8 * 20 * 4096
        # and a WAL started over is cut back to the limit (the size test above counts on it)
        assert await engine.write(lambda tx: tx.one("PRAGMA journal_size_limit")[0]) == limit
        assert await engine.read(lambda tx: tx.one("SELECT count(*) FROM t")[0]) == 320
    finally:
        await engine.close()


async def test_writes_queued_during_a_batch_join_it_and_a_checkpoint_waits_its_turn(
    tmp_path: Path,
) -> None:
    engine = SQLiteEngine(tmp_path / "b.db")
    await engine.start()
    try:
        await engine.write(lambda tx: tx.execute("CREATE TABLE t (v INTEGER)"))

        def slow(tx: Any) -> None:
            tx.execute("INSERT INTO t VALUES (0)")
            time.sleep(0.3)  # the writes below are queued meanwhile

        first = asyncio.ensure_future(engine.write(slow))
        await asyncio.sleep(0.1)
        before = asyncio.ensure_future(
            engine.write(lambda tx: tx.execute("INSERT INTO t VALUES (1)"))
        )
        checkpoint = asyncio.ensure_future(engine.checkpoint())
        after = asyncio.ensure_future(
            engine.write(lambda tx: tx.execute("INSERT INTO t VALUES (2)"))
        )
        await asyncio.gather(first, before, checkpoint, after)
        rows = await engine.read(lambda tx: tx.all("SELECT v FROM t ORDER BY rowid"))
        assert [r[0] for r in rows] == [0, 1, 2]  # in the order queued, none lost or stuck
    finally:
        await engine.close()


async def test_a_full_disk_at_close_loses_nothing_and_raises_nothing(tmp_path: Path) -> None:
    """A real full file system (a 2 MiB tmpfs): writes fail with a clear StoreError, closing
    leaves the WAL for the next start (no traceback), and every committed row is still there."""
    import subprocess

    import pytest

    from tidings.errors import StoreError

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        engine = SQLiteEngine(disk / "f.db")
        await engine.start()
        await engine.write(lambda tx: tx.execute("CREATE TABLE t (v BLOB)"))
        committed = 0
        with pytest.raises(StoreError):
            for _ in range(1000):  # bounded: 2 MiB fill up well before
                await engine.write(
                    lambda tx: tx.execute("INSERT INTO t VALUES (?)", (b"x" * 8192,))
                )
                committed += 1
        await engine.close()  # the closing checkpoint may fail too: no exception
        again = SQLiteEngine(disk / "f.db")
        await again.start()
        try:
            assert await again.read(lambda tx: tx.one("SELECT count(*) FROM t")[0]) == committed
        finally:
            await again.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)  # lazy: even if a file is open

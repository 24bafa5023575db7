"""The SQLite engine copies the WAL back into the database file on its own thread."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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

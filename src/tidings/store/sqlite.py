"""SQLite engine: WAL, one writer thread fed by a queue with group commit, readers on a pool.

Writes from every coroutine are queued; the writer takes up to ``batch`` of them (those queued
while it runs them too), runs each in a savepoint inside one ``BEGIN IMMEDIATE`` transaction and
commits with ``synchronous=FULL`` (the commit is fsync'd), then settles each caller's future. A
failing operation rolls back to its own savepoint and fails alone. Only after the commit returns
does any caller see success.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tidings.errors import StoreError, StoreRefused

T = TypeVar("T")
log = logging.getLogger("tidings.store")

_STOP = object()
_CHECKPOINT = object()
CHECKPOINT_EVERY_S = 1.0  # the background checkpoint runs at most this often (while writes come)
# Past this size the writer copies the WAL back itself, between two commits (see _commit_batch).
WAL_LIMIT_BYTES = 32 << 20


class SQLiteTx:
    lock_rows = ""  # one writer: nothing else can change a row between read and update

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._cur = conn.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(sql, params)

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cur.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._cur.execute(sql, params)
        row = self._cur.fetchone()
        self._cur.fetchall()  # finish the statement (RETURNING needs it)
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(sql, params)
        return self._cur.fetchall()

    def rowcount(self) -> int:
        return self._cur.rowcount


def _connect(
    path: str, readonly: bool = False, wal_limit: int = WAL_LIMIT_BYTES
) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        # no checkpoint inside a commit: the engine's checkpointer thread copies the WAL back
        # (SQLiteEngine._run_checkpointer), so the writer does not wait for that I/O, except
        # once the WAL passes its limit (_commit_batch, after the callers are answered)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {int(wal_limit)}")  # cut back after a burst
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")  # deleted data is overwritten, not left behind
        # the writer touches every device row of a fan-out: keep them cached (grows as used)
        conn.execute("PRAGMA cache_size = -65536")
    return conn


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class SQLiteEngine:
    """One database file. ``batch`` bounds how many queued writes share a commit."""

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        batch: int = 512,
        readers: int = 2,
        wal_limit_bytes: int = WAL_LIMIT_BYTES,
    ) -> None:
        self.path = str(path)
        self._batch = batch
        self._wal_limit = wal_limit_bytes
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="tidings-sqlite-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._committed = threading.Event()  # set by the writer after a commit that wrote
        # one checkpoint at a time: SQLite fails a second one at once (busy), without waiting
        self._checkpointing = threading.Lock()
        self._closing = threading.Event()
        self._held: Any = None  # a stop or checkpoint request met while a batch took more writes
        self._checkpointer: threading.Thread | None = None

    async def start(self) -> None:
        if self.path != ":memory:":
            try:  # the data is its owner's alone: secrets, device tokens, consent records
                Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                Path(self.path).touch(mode=0o600)  # SQLite gives -wal and -shm the same mode
            except OSError as exc:
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writer = threading.Thread(
            target=self._run_writer,
            args=(asyncio.get_running_loop(), ready),
            name="tidings-sqlite-writer",
            daemon=True,
        )
        self._writer.start()
        await ready
        if self.path != ":memory:":
            self._checkpointer = threading.Thread(
                target=self._run_checkpointer, name="tidings-sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._closing.set()
            self._committed.set()
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._writer is None:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, args, fut, loop))
        return await fut

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (after the writes queued so far)."""
        if self._writer is None:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put((_CHECKPOINT, (), fut, loop))
        await fut

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_call, fn, args)

    async def read_now(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a one-statement point read on the event-loop thread (its own read-only
        connection), outside a transaction: a hand-off to a reader thread and back costs ~20-55
        µs of CPU, more than reading a row by key, and BEGIN and COMMIT another ~30 µs here."""
        return self._read_call(fn, args, transaction=False)

    def _read_call(
        self, fn: Callable[..., T], args: tuple[Any, ...], transaction: bool = True
    ) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path, readonly=True)
            with self._lock:
                self._read_conns.append(conn)
        try:
            if not transaction:  # one statement: its own snapshot
                return fn(SQLiteTx(conn), *args)
            conn.execute("BEGIN")
            try:
                return fn(SQLiteTx(conn), *args)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite read failed: {exc}") from exc
        except (OverflowError, UnicodeEncodeError) as exc:  # over 64 bits, or not UTF-8
            raise StoreRefused(f"sqlite cannot hold a value: {exc}") from exc

    def _run_writer(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = _connect(self.path, wal_limit=self._wal_limit)
        except sqlite3.Error as exc:
            err = StoreError(f"cannot open {self.path}: {exc}")
            loop.call_soon_threadsafe(_settle, ready, None, err)
            return
        loop.call_soon_threadsafe(_settle, ready, None, None)
        try:
            while True:
                item, self._held = self._held or self._queue.get(), None
                if item is _STOP:
                    break
                if item[0] is _CHECKPOINT:
                    self._checkpoint(conn, item)
                else:  # the writes queued behind it join the batch as it runs (_more)
                    self._commit_batch(conn, [item])
        finally:
            try:  # every commit is in the WAL already: this only folds it back and cuts it
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # a full disk, say: the next start folds it back
                log.warning("closing %s: WAL left for the next start: %s", self.path, exc)
            finally:
                conn.close()

    def _run_checkpointer(self) -> None:
        """Copy committed WAL frames back into the database file, beside the writer.

        Woken by commits, at most once per ``CHECKPOINT_EVERY_S``: the WAL holds about that much
        of the writes (a page written by many commits is copied once), and the writer never
        waits for the copy. PASSIVE: it runs alongside the writer and readers, copying what no
        reader still needs; the WAL starts over once everything was copied.
        """
        conn = _connect(self.path)
        try:
            while True:
                self._committed.wait()
                if self._closing.is_set():
                    break
                self._committed.clear()
                self._passive_checkpoint(conn)
                if self._closing.wait(CHECKPOINT_EVERY_S):
                    break
        finally:
            conn.close()

    def _more(self, batch: list[Any]) -> bool:
        """Take a queued write into the batch, to share its commit (one commit of a 1000-target
        send costs about as much as one of several: they dirty the same pages). False when none
        waits or the batch is full; a stop or checkpoint request waits for the writer's loop."""
        if len(batch) >= self._batch or self._held is not None:
            return False
        try:
            nxt = self._queue.get_nowait()
        except queue.Empty:
            return False
        if nxt is _STOP or nxt[0] is _CHECKPOINT:
            self._held = nxt
            return False
        batch.append(nxt)
        return True

    def _wal_bytes(self) -> int:
        try:
            return os.stat(self.path + "-wal").st_size
        except OSError:  # in memory, or not made yet
            return 0

    def _passive_checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL back into the database file as far as no reader still needs it.

        The background thread does it beside the writer. Under a steady stream of commits that
        pass never catches up with the end of the WAL, so SQLite never starts it over: the file
        grew by every commit (1.4 GB in 12 s of 1000-target sends) and each commit paid for
        extending it. So past the limit the writer does it too, between commits: with no write
        in between, the WAL is copied in full and the next commit starts it over, writing into
        blocks the file already has.
        """
        try:
            with self._checkpointing:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next commit tries again
            log.warning("sqlite checkpoint failed: %s", exc)

    def _checkpoint(self, conn: sqlite3.Connection, item: Any) -> None:
        _, _, fut, loop = item
        error: BaseException | None = None
        try:
            with self._checkpointing:  # after the background pass, if one is running
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy and busy[0]:
                error = StoreError("WAL checkpoint could not complete (readers busy)")
        except sqlite3.Error as exc:
            error = StoreError(f"sqlite checkpoint failed: {exc}")
        loop.call_soon_threadsafe(_settle, fut, None, error)

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[Any, Any, Any, BaseException | None]] = []
        tx = SQLiteTx(conn)
        changes = conn.total_changes
        copy_back = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            i = 0
            while i < len(batch) or self._more(batch):
                fn, args, fut, loop = batch[i]
                i += 1
                conn.execute("SAVEPOINT op")
                try:
                    result = fn(tx, *args)
                except Exception as exc:  # one failing operation must not stop the writer
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    error: BaseException = exc
                    if isinstance(exc, sqlite3.Error):
                        error = StoreError(f"sqlite write failed: {exc}")
                        error.__cause__ = exc
                    elif isinstance(exc, OverflowError | UnicodeEncodeError):  # see _read_call
                        error = StoreRefused(f"sqlite cannot hold a value: {exc}")
                        error.__cause__ = exc
                    outcomes.append((fut, loop, None, error))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((fut, loop, result, None))
            conn.execute("COMMIT")
            if conn.total_changes != changes:  # nothing written (an idle poll): no checkpoint
                # the size test counts on journal_size_limit: a WAL started over is cut back
                copy_back = self._wal_bytes() > self._wal_limit
                if not copy_back:
                    self._committed.set()
        except sqlite3.Error as exc:
            log.error("sqlite commit failed: %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = StoreError(f"sqlite commit failed: {exc}")
            outcomes = [(b[2], b[3], None, err) for b in batch]
        for fut, loop, result, failure in outcomes:
            loop.call_soon_threadsafe(_settle, fut, result, failure)
        if copy_back:  # the callers have their answers; the next batch waits for it
            self._passive_checkpoint(conn)

"""PostgreSQL engine: the same operations on pooled psycopg connections, one transaction each.

Operations run on worker threads (psycopg's blocking API keeps the operations shared with the
SQLite engine). PostgreSQL does its own group commit; row locks taken by ``UPDATE ... RETURNING``
serialise concurrent sends to one device. Serialization failures and deadlocks are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import psycopg.errors
import psycopg.sql
from psycopg_pool import ConnectionPool, PoolTimeout

from tidings.errors import StoreError, StoreRefused, StoreUnavailable

T = TypeVar("T")
log = logging.getLogger("tidings.store")

_SQL_CACHE: dict[str, str] = {}


def _pg(sql: str) -> str:
    out = _SQL_CACHE.get(sql)
    if out is None:
        out = _SQL_CACHE[sql] = sql.replace("?", "%s")
    return out


class PostgresTx:
    lock_rows = " FOR UPDATE"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._cur = conn.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(_pg(sql), params)

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self._cur.executemany(_pg(sql), rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._cur.execute(_pg(sql), params)
        return self._cur.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(_pg(sql), params)
        return self._cur.fetchall()

    def rowcount(self) -> int:
        return self._cur.rowcount


class PostgresEngine:
    name = "postgres"

    def __init__(self, url: str, pool_size: int = 8, schema: str | None = None) -> None:
        """``schema``: keep every table in this schema (created at start) instead of the
        database's default one; a region's store on PostgreSQL is its own schema."""
        self.url = url
        self.schema = schema
        kwargs: dict[str, Any] = {"autocommit": False}
        if schema is not None:
            kwargs["options"] = f"-c search_path={schema}"
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=10.0,
            kwargs=kwargs,
        )
        self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="tidings-pg")

    async def start(self) -> None:
        try:
            if self.schema is not None:
                await asyncio.to_thread(self._create_schema, self.schema)
            await asyncio.to_thread(self._pool.open, True, 10.0)
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from exc

    def _create_schema(self, schema: str) -> None:
        create = psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
        with (
            psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn,
            contextlib.suppress(psycopg.errors.UniqueViolation),  # made by another node just now
        ):
            conn.execute(create.format(psycopg.sql.Identifier(schema)))

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.close)
        self._threads.shutdown(wait=True)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._call, fn, args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.write(fn, *args)

    async def read_now(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.write(fn, *args)  # a network round trip either way

    async def checkpoint(self) -> None:
        """Nothing to do here: deleted rows stay in PostgreSQL's files as dead tuples until
        (auto)vacuum reclaims them (see docs/privacy.md)."""

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        for attempt in range(5):
            try:
                with self._pool.connection() as conn:
                    return fn(PostgresTx(conn), *args)
            except (
                psycopg.errors.SerializationFailure,
                psycopg.errors.DeadlockDetected,
                # a concurrent transaction inserted the same key first: run again, and the
                # operation's own check sees that row (a 409 "taken", not a 503)
                psycopg.errors.UniqueViolation,
            ):
                log.info("postgres transaction retried (attempt %d)", attempt + 1)
                continue
            except (psycopg.OperationalError, PoolTimeout) as exc:
                raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
            except psycopg.DataError as exc:  # a value it cannot hold (NUL in text)
                raise StoreRefused(f"PostgreSQL refused a value: {exc}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"postgres operation failed: {exc}") from exc
        raise StoreUnavailable("PostgreSQL kept aborting the transaction")

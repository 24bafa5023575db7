"""Shared fixtures: real SQLite files and a real PostgreSQL database per test session."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from tidings.clock import ManualClock
from tidings.store.postgres import PostgresEngine
from tidings.store.sqlite import SQLiteEngine
from tidings.store.store import Store

PG_ADMIN_URL = os.environ.get("TIDINGS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session. PostgreSQL must answer: no skipping."""
    name = "tidings_test_" + secrets.token_hex(4)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_pg(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    if request.param == "sqlite":
        engine: SQLiteEngine | PostgresEngine = SQLiteEngine(tmp_path / "t.db")
    else:
        url = request.getfixturevalue("pg_url")
        _reset_pg(url)
        engine = PostgresEngine(url, pool_size=4)
    s = Store(engine, clock=clock, backlog_cap=5)
    await s.start()
    try:
        yield s
    finally:
        await s.close()

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.helpers import point_xmpush_at, running_node
from tidings.core.models import NewApp
from tidings.node import Node


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "data", ack_timeout_s=0.5, admin_token="op-secret") as n:
        point_xmpush_at(n)
        yield n


@pytest.fixture
async def app(node: Node) -> NewApp:
    return await node.create_app("Demo", "com.example.demo")  # ungated


@pytest.fixture
def pg_clean(pg_url: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied before and after the test."""
    clean(pg_url)
    yield pg_url
    clean(pg_url)


def clean(pg_url: str) -> None:
    """A clean database for these nodes: the control store's schema and every region's."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        regions = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tidings\\_%'"
        ).fetchall()
        for (name,) in regions:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")

"""What every `tidings` command shares: JSON-line output and opening the store for one call."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from tidings import settings
from tidings.errors import TidingsError
from tidings.store.store import Store

T = TypeVar("T")


def emit(obj: Any) -> None:
    """Print one JSON line, flushed at once (scripts read it as it comes)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def with_store(
    data_dir: str | None, database_url: str | None, fn: Callable[[Store], Awaitable[T]]
) -> T:
    """Open the store the flags name, run ``fn`` on it, close it; errors become exit code 1."""
    from tidings.store.store import open_store

    async def go() -> T:
        store = open_store(
            settings.load(overrides={"data_dir": data_dir, "database_url": database_url})
        )
        await store.start()
        try:
            return await fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except TidingsError as exc:
        raise click.ClickException(str(exc)) from exc


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--database-url", default=None, help="PostgreSQL URL instead of SQLite.")(f)
    return click.option("--data-dir", default=None, help="Directory of the SQLite files.")(f)

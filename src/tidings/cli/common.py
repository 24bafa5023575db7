"""What every `tidings` command shares: JSON-line output and opening the stores for one call."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from tidings import settings
from tidings.errors import TidingsError
from tidings.residency import Residency
from tidings.store.store import Store

T = TypeVar("T")


def emit(obj: Any) -> None:
    """Print one JSON line, flushed at once (scripts read it as it comes)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def with_residency(
    data_dir: str | None, database_url: str | None, fn: Callable[[Residency], Awaitable[T]]
) -> T:
    """Open the stores the flags name, run ``fn`` on them, close them; errors become exit 1."""
    from tidings.residency import open_residency

    async def go() -> T:
        res = open_residency(
            settings.load(overrides={"data_dir": data_dir, "database_url": database_url})
        )
        await res.start()
        try:
            return await fn(res)
        finally:
            await res.close()

    try:
        return asyncio.run(go())
    except TidingsError as exc:
        raise click.ClickException(str(exc)) from exc


def with_store(
    data_dir: str | None, database_url: str | None, fn: Callable[[Store], Awaitable[T]]
) -> T:
    """Run ``fn`` on the control store (accounts, terms, audit, limits, review rules)."""
    return with_residency(data_dir, database_url, lambda res: fn(res.control))


def with_app_store(
    data_dir: str | None,
    database_url: str | None,
    app_id: str,
    fn: Callable[[Store], Awaitable[T]],
) -> T:
    """Run ``fn`` on the store of the app's region (its devices, consent, messages)."""

    async def go(res: Residency) -> T:
        found = await res.app_store(app_id)
        if found is None:
            raise click.ClickException(f"no app {app_id}")
        return await fn(found[1])

    return with_residency(data_dir, database_url, go)


def with_device_store(
    data_dir: str | None, database_url: str | None, reg_id: str, fn: Callable[[Store], Awaitable[T]]
) -> T:
    """Run ``fn`` on the region store that holds the device (or the first one, if none does)."""

    async def go(res: Residency) -> T:
        for store in res.regional.values():
            if await store.get_device(reg_id) is not None:
                return await fn(store)
        return await fn(next(iter(res.regional.values())))

    return with_residency(data_dir, database_url, go)


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--database-url", default=None, help="PostgreSQL URL instead of SQLite.")(f)
    return click.option("--data-dir", default=None, help="Directory of the SQLite files.")(f)

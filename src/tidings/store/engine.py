"""The engine port: run a store operation (a function over a Tx) for reading or writing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Engine(Protocol):
    name: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(tx, *args)`` in a write transaction; return only once it is committed."""
        ...

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(tx, *args)`` on a read-only snapshot."""
        ...

    async def read_now(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`read` for one statement that reads a few rows through an index, on the
        caller's thread where the engine can (SQLite: no hand-off to a reader thread, which
        costs more than such a read, and no transaction around the statement)."""
        ...

    async def checkpoint(self) -> None:
        """Make committed deletions reach the database files (SQLite: truncate the WAL)."""
        ...

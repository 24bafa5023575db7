"""Statements over many keys, in batches: ``IN (?, …)`` lists of at most ``CHUNK`` values.

A leaf module: ``ops.py`` and the modules it imports (which cannot import from it) share it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

CHUNK = 500  # values per IN list: well under SQLite's and PostgreSQL's parameter limits


def marks(n: int) -> str:
    """``n`` placeholders for an ``IN (…)`` list."""
    return ",".join("?" * n)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

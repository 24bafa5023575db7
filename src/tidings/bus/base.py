"""The bus port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tidings.bus.events import BusEvent


class Bus(Protocol):
    def subscribe(self, handler: Callable[[BusEvent], None]) -> None: ...
    async def publish(self, event: BusEvent) -> None: ...
    async def close(self) -> None: ...

"""The bus port: how a committed change reaches the gateways that hold the devices.

Two implementations pass one contract suite (tests/bus): :class:`tidings.bus.local.LocalBus`
(one process, the embedded default) and :class:`tidings.bus.redis.RedisBus` (many nodes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tidings.bus.events import BusEvent


class Bus(Protocol):
    def subscribe(self, handler: Callable[[BusEvent], None]) -> None: ...
    def on_rescan(self, handler: Callable[[], None]) -> None:
        """``handler`` runs when events may have been lost (a broker outage)."""
        ...

    async def start(self) -> None: ...
    async def publish(self, event: BusEvent) -> None: ...
    async def close(self) -> None: ...

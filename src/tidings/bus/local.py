"""The in-process bus: the embedded default (one process serves API and gateway)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tidings.bus.events import BusEvent

log = logging.getLogger("tidings.bus")

Handler = Callable[[BusEvent], None]


class LocalBus:
    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def on_rescan(self, handler: Callable[[], None]) -> None:
        """Nothing is ever lost in one process: never called."""

    async def start(self) -> None:
        pass

    async def publish(self, event: BusEvent) -> None:
        self.deliver(event)

    def deliver(self, event: BusEvent) -> None:
        """Hand an event to every handler (also what the Redis bus hears from other nodes)."""
        for handler in self.handlers:
            try:
                handler(event)
            except Exception:  # a broken subscriber must not fail the send that was committed
                log.exception("bus handler failed for %s", type(event).__name__)

    async def close(self) -> None:
        self.handlers.clear()

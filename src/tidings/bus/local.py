"""The in-process bus: the embedded default (one process serves API and gateway)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tidings.bus.events import BusEvent

log = logging.getLogger("tidings.bus")

Handler = Callable[[BusEvent], None]


class LocalBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, event: BusEvent) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:  # a broken subscriber must not fail the send that was committed
                log.exception("bus handler failed for %s", type(event).__name__)

    async def close(self) -> None:
        self._handlers.clear()

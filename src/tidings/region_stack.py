"""The services that work on one region's store: sending, review, scheduling and receipts.

A node builds one :class:`RegionStack` per region it serves; the sender API, the gateway and the
management API pick the stack of the app's region, so a region's data is only ever read and
written through that region's store.
"""

from __future__ import annotations

from tidings.bus.base import Bus
from tidings.compliance.moderation import ReviewService
from tidings.core.receipts import ReceiptSender
from tidings.core.scheduler import Scheduler
from tidings.core.sending import SendService
from tidings.settings import Settings
from tidings.store.store import Store


class RegionStack:
    def __init__(self, region: str, store: Store, bus: Bus, settings: Settings) -> None:
        self.region = region
        self.store = store
        self.sender = SendService(store, bus)
        self.review = ReviewService(store, bus)
        self.scheduler = Scheduler(store, bus, self.sender, settings.schedule_poll_s)
        self.receipts = ReceiptSender(
            store,
            interval_s=settings.receipt_interval_s,
            timeout_s=settings.receipt_timeout_s,
            max_attempts=settings.receipt_max_attempts,
            allow_private=settings.receipt_allow_private,
        )

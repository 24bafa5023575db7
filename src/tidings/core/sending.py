"""Accepting sends: commit first, then tell the gateways. Success is returned only after commit."""

from __future__ import annotations

from collections.abc import Sequence

from tidings.bus.base import Bus
from tidings.bus.events import Ephemeral, InboxChanged, LogAppended, Revoked
from tidings.core.models import App, Message, ScheduledJob, TargetKind, TopicOp, UnicastResult
from tidings.store.store import Store


class SendService:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus

    def now(self) -> int:
        return self.store.clock.now_ms()

    async def unicast(
        self, message: Message, targets: Sequence[str], durable: bool = True
    ) -> UnicastResult:
        """Send to regIds, aliases or accounts (``message.kind``)."""
        result = await self.store.send_unicast(message, targets, durable)
        if not result.reg_ids:
            return result
        if durable:
            await self.bus.publish(InboxChanged(result.reg_ids, result.deliveries))
        else:
            await self.bus.publish(
                Ephemeral(
                    message.app_id,
                    message.msg_id,
                    message.notification.to_json(),
                    message.kind,
                    reg_ids=result.reg_ids,
                )
            )
        return result

    async def unicast_batch(
        self, items: Sequence[tuple[Message, Sequence[str]]]
    ) -> list[UnicastResult]:
        """Durable unicast messages committed together; then one bus event for all devices."""
        results = await self.store.send_unicast_batch(items)
        reg_ids = tuple(dict.fromkeys(r for res in results for r in res.reg_ids))
        if reg_ids:
            await self.bus.publish(InboxChanged(reg_ids))
        return results

    async def broadcast(self, message: Message, durable: bool = True) -> None:
        """Send to a topic expression or to every device of the app: one row, however many."""
        if durable:
            await self.store.append_log(message)
            await self.bus.publish(LogAppended(message.app_id))
        else:
            await self.bus.publish(
                Ephemeral(
                    message.app_id,
                    message.msg_id,
                    message.notification.to_json(),
                    message.kind,
                    topics=message.topics,
                    topic_op=message.topic_op,
                )
            )

    async def schedule(self, jobs: Sequence[ScheduledJob]) -> None:
        """Commit sends that fire later (``time_to_send``); the scheduler sends them."""
        await self.store.schedule(jobs)

    async def unicast_batch_and_schedule(
        self, items: Sequence[tuple[Message, Sequence[str]]], jobs: Sequence[ScheduledJob]
    ) -> list[UnicastResult]:
        """A multi-message request with scheduled entries: one transaction for all of it."""
        if not jobs:
            return await self.unicast_batch(items)
        results = await self.store.send_and_schedule(items, jobs)
        reg_ids = tuple(dict.fromkeys(r for res in results for r in res.reg_ids))
        if reg_ids:
            await self.bus.publish(InboxChanged(reg_ids))
        return results

    async def revoke(
        self,
        app: App,
        notify_id: int,
        kind: TargetKind,
        targets: Sequence[str] = (),
        topics: tuple[str, ...] = (),
        op: TopicOp = TopicOp.UNION,
    ) -> UnicastResult:
        """Recall the notification in slot ``notify_id`` on the targeted devices connected now."""
        if kind.is_broadcast:
            await self.bus.publish(Revoked(app.app_id, notify_id, kind, topics=topics, topic_op=op))
            return UnicastResult((), ())
        regs, bad = await self.store.resolve_targets(app.app_id, kind, targets)
        if regs:
            await self.bus.publish(Revoked(app.app_id, notify_id, kind, reg_ids=tuple(regs)))
        return UnicastResult(tuple(regs), tuple(bad))

    async def subscribe(self, app: App, reg_ids: Sequence[str], topic: str, on: bool) -> None:
        if on:
            await self.store.subscribe(app.app_id, reg_ids, topic)
        else:
            await self.store.unsubscribe(app.app_id, reg_ids, topic)


__all__ = ["SendService", "TargetKind", "TopicOp"]

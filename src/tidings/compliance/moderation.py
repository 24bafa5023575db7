"""The review service: run the rules on a send, hold or reject it, and let staff decide.

The sender API calls :meth:`ReviewService.check` before it stores a message. ``reject`` ends the
request with :data:`tidings.api.codes.CONTENT_REJECTED` and stores nothing (but the decision);
``hold`` commits the message to the review queue and answers with its id; ``allow`` lets the send
go on. Staff use :meth:`ReviewService.approve` and :meth:`ReviewService.reject` (the admin API and
``tidings review approve|reject``). Every decision goes to the ``review_log`` table; allow
decisions are logged only when at least one rule applied to the app.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from tidings.bus.base import Bus
from tidings.bus.events import InboxChanged, LogAppended
from tidings.compliance import review
from tidings.compliance.models import HeldMessage, ReviewRule, Verdict
from tidings.core.models import Message, TargetKind
from tidings.errors import ComplianceError
from tidings.store.store import Store


async def add_rule(
    store: Store, kind: str, pattern: str, app_id: str | None = None, action: str | None = None
) -> ReviewRule:
    """Store a rule; it applies from the next send on (no restart)."""
    review.check_rule(kind, pattern)
    try:
        verdict = Verdict(action) if action else review.DEFAULT_ACTION[kind]
    except ValueError:
        raise ComplianceError("action must be hold or reject") from None
    if verdict is Verdict.ALLOW:
        raise ComplianceError("action must be hold or reject")
    if app_id is not None and await store.app_by_id(app_id) is None:
        raise ComplianceError(f"no app {app_id}")
    rule = ReviewRule(
        "rr" + secrets.token_hex(6), app_id, kind, pattern, verdict, store.clock.now_ms()
    )
    await store.add_review_rule(rule)
    return rule


RULES_TTL_S = 1.0  # rules changed elsewhere (CLI, another node) apply within this time


class ReviewService:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        # app_id -> (rule rows, built rules, fetched at): one store read per app and second
        self._rules: dict[str, tuple[list[Any], list[Any], float]] = {}

    async def _rules_of(self, app_id: str) -> tuple[list[Any], list[Any]]:
        now = time.monotonic()
        cached = self._rules.get(app_id)
        if cached is not None and now - cached[2] < RULES_TTL_S:
            return cached[0], cached[1]
        rows = await self.store.review_rules(app_id)
        built = review.build_rules(rows) if rows else []
        if len(self._rules) > 10_000:
            self._rules.clear()
        self._rules[app_id] = (rows, built, now)
        return rows, built

    def forget_rules(self) -> None:
        """Drop cached rules (after a rule was changed through this node)."""
        self._rules.clear()

    async def check(self, message: Message, targets: Sequence[str] = ()) -> review.Decision:
        """Decide on a send and record it; a hold is committed to the queue before returning."""
        decision = await self.evaluate(message, targets)
        await self.record(message, targets, decision)
        return decision or review.ALLOW

    async def evaluate(
        self, message: Message, targets: Sequence[str] = ()
    ) -> review.Decision | None:
        """The rules' decision, without recording it; None when no rule applies to the app."""
        rows, rules = await self._rules_of(message.app_id)
        if not rows:
            return None
        audience = len(targets)
        if message.kind.is_broadcast and any(r.kind == "audience" for r in rows):
            audience = await self.store.audience(message.app_id, message.kind, message.topics)
        n = message.notification
        item = review.ReviewInput(
            message.app_id,
            n.title,
            n.description,
            n.payload,
            n.extra,
            message.kind,
            audience,
        )
        return review.decide(item, rules)

    async def record(
        self, message: Message, targets: Sequence[str], decision: review.Decision | None
    ) -> None:
        if decision is None:
            return
        if decision.verdict is Verdict.HOLD:
            await self.store.hold_message(message, targets, decision.code)
        else:
            await self.store.log_review_decision(
                message.msg_id, message.app_id, decision.verdict.value, decision.code, "rules"
            )

    async def approve(self, msg_id: str, actor: str, reason: str = "") -> HeldMessage:
        """Release a held message for delivery (unless it expired meanwhile)."""
        done = await self.store.decide_held(msg_id, True, actor, reason)
        if done is None:
            raise ComplianceError(f"{msg_id} is not held for review")
        item, result = done
        if item.status == "approved":
            if TargetKind(item.kind).is_broadcast:
                await self.bus.publish(LogAppended(item.app_id))
            elif result is not None and result.reg_ids:
                await self.bus.publish(InboxChanged(result.reg_ids))
        return item

    async def reject(self, msg_id: str, actor: str, reason: str = "") -> HeldMessage:
        done = await self.store.decide_held(msg_id, False, actor, reason)
        if done is None:
            raise ComplianceError(f"{msg_id} is not held for review")
        return done[0]


class ReviewDesk:
    """The review queue as staff see it: held messages across every region this node serves.

    A held message lives in its app's region store; the desk finds it there and decides it with
    that region's :class:`ReviewService`.
    """

    def __init__(self, services: Sequence[ReviewService]) -> None:
        self.services = list(services)

    async def held_messages(self, app_id: str | None = None, limit: int = 100) -> list[HeldMessage]:
        found: list[HeldMessage] = []
        for service in self.services:
            found += await service.store.held_messages(app_id, limit)
        return sorted(found, key=lambda h: h.created_at)[:limit]

    async def rejections(self, app_id: str, limit: int = 100) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        for service in self.services:
            found += await service.store.rejections(app_id, limit)
        return found[:limit]

    async def find(self, msg_id: str) -> tuple[HeldMessage, ReviewService] | None:
        for service in self.services:
            item = await service.store.held_message(msg_id)
            if item is not None:
                return item, service
        return None

    async def show(self, msg_id: str) -> tuple[HeldMessage, list[dict[str, object]]] | None:
        found = await self.find(msg_id)
        if found is None:
            return None
        item, service = found
        return item, await service.store.review_decisions(msg_id)

    async def decide(self, msg_id: str, approve: bool, actor: str, reason: str) -> HeldMessage:
        """Approve or reject; :class:`ComplianceError` when the message is not held here."""
        found = await self.find(msg_id)
        if found is None:
            raise ComplianceError(f"{msg_id} is not held for review")
        service = found[1]
        act = service.approve if approve else service.reject
        return await act(msg_id, actor, reason)

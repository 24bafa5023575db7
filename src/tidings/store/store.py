"""The storage port: every durable thing Tidings does, as async methods over an engine.

``Store`` is the one interface the rest of Tidings uses; it runs the operations of
``tidings.store.ops`` on a :class:`~tidings.store.engine.Engine` (SQLite or PostgreSQL). The two
engines pass the same contract suite (``tests/store/test_contract.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from tidings import ids
from tidings.clock import Clock, SystemClock
from tidings.compliance.models import ConsentRecord, HeldMessage, PolicyVersion, ReviewRule
from tidings.core.models import (
    App,
    Channel,
    Delivery,
    Device,
    DeviceInfo,
    FiredJob,
    LogEntry,
    Message,
    MessageStats,
    NewApp,
    Receipt,
    ScheduledJob,
    TargetKind,
    TopicOp,
    UnicastResult,
    WebPushMessage,
)
from tidings.core.quotas import UNLIMITED, Limits, LimitsEntry, active_entry
from tidings.store import (
    ops,
    ops_accounts,
    ops_channels,
    ops_delivery,
    ops_feedback,
    ops_jobs,
    ops_limits,
    ops_receipts,
    ops_sdk,
    ops_stats,
    ops_webpush,
    privacy_ops,
    review_ops,
)
from tidings.store.account_store import AccountStore
from tidings.store.engine import Engine


class Store:
    """One database's worth of Tidings data.

    A region's store is given the ``control`` store: accounts, the limits schedule and review
    rules (the operator's and developers' records, not end users') are then read from and written
    to the control store, everything else to this one (see :mod:`tidings.residency`).
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock | None = None,
        backlog_cap: int = 1000,
        limits_cache_s: float = 1.0,
        control: Store | None = None,
    ) -> None:
        self.engine = engine
        self.control: Store = control if control is not None else self
        self.clock: Clock = control.clock if control is not None else clock or SystemClock()
        self.backlog_cap = backlog_cap
        self.limits_cache_s = limits_cache_s
        self._schedule: list[LimitsEntry] = []
        self._schedule_read_at = -float("inf")  # monotonic
        self.limits_reads = 0  # schedule reads (operations, tests)
        self.accounts: AccountStore = (
            AccountStore(engine, self.clock) if control is None else control.accounts
        )

    async def start(self) -> None:
        await self.engine.start()
        await self.engine.write(_migrate, self.engine.name)

    async def close(self) -> None:
        await self.engine.close()

    async def schema_version(self) -> int:
        return await self.engine.read(ops.schema_version)

    # apps
    async def create_app(
        self, name: str, package: str, privacy_policy_version: str | None = None
    ) -> NewApp:
        new = NewApp.generate(name, package, privacy_policy_version, self.clock.now_ms())
        await self.engine.write(ops.create_app, new.app)
        return new

    async def app_by_secret(self, secret: str) -> App | None:
        app = await self.engine.read(ops.app_by_secret_hash, ids.secret_hash(secret))
        if app is None or not ids.secret_matches(secret, app.secret_hash):
            return None
        return app

    async def app_by_id(self, app_id: str) -> App | None:
        return await self.engine.read(ops.app_by_id, app_id)

    async def app_by_package(self, package: str) -> App | None:
        return await self.engine.read(ops.app_by_package, package)

    async def list_apps(self) -> list[App]:
        return await self.engine.read(ops.list_apps)

    async def mirror_app(self, app: App) -> None:
        """Give this (region) store the row of an app the control store registered."""
        await self.engine.write(ops.mirror_app, app)

    async def delete_app_data(self, app_id: str) -> list[str]:
        """Delete an app's row and its devices, messages and settings here; the deleted regIds."""
        return await self.engine.write(ops_accounts.delete_app, None, app_id)

    # devices
    async def register_device(self, app_id: str, uaid: str, info: DeviceInfo) -> str:
        return (await self.register(app_id, uaid, info))[0]

    async def register(self, app_id: str, uaid: str, info: DeviceInfo) -> tuple[str, int]:
        """The device's regId and its slot for log cursors (:mod:`tidings.store.ack_pages`)."""
        return await self.engine.write(ops.register_device, app_id, uaid, info, self.clock.now_ms())

    async def app_sdk_counts(self, app_id: str) -> list[tuple[str, str, int]]:
        """(SDK name, SDK version, devices) of an app's registered devices."""
        return await self.engine.read(ops_sdk.app_counts, app_id)

    async def uaid_known(self, uaid: str) -> bool:
        return await self.engine.read(ops.uaid_known, uaid)

    async def unregister_device(self, reg_id: str) -> bool:
        return await self.engine.write(ops.unregister_device, reg_id, self.clock.now_ms())

    async def get_device(self, reg_id: str) -> Device | None:
        return await self.engine.read(ops.get_device, reg_id)

    async def set_alias(self, app_id: str, reg_id: str, alias: str) -> None:
        await self.engine.write(ops.set_alias, app_id, reg_id, alias)

    async def unset_alias(self, app_id: str, reg_id: str, alias: str) -> bool:
        return await self.engine.write(ops.unset_alias, app_id, reg_id, alias)

    async def set_account(self, reg_id: str, account: str | None) -> None:
        await self.engine.write(ops.set_account, reg_id, account)

    async def subscribe(self, app_id: str, reg_ids: Sequence[str], topic: str) -> None:
        await self.engine.write(ops.subscribe, app_id, list(reg_ids), topic)

    async def unsubscribe(self, app_id: str, reg_ids: Sequence[str], topic: str) -> None:
        await self.engine.write(ops.unsubscribe, app_id, list(reg_ids), topic)

    async def resolve_targets(
        self, app_id: str, kind: TargetKind, targets: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        return await self.engine.read(ops.resolve_targets, app_id, kind, list(targets))

    # messages
    async def send_unicast(
        self, message: Message, targets: Sequence[str], durable: bool = True
    ) -> UnicastResult:
        """Commit a unicast message and its inbox rows; returns after the commit. Devices at
        their daily quota (active limits) are left out: ``UnicastResult.over_quota``. With
        ``durable`` False (TTL 0) the targets are only resolved and filtered, nothing stored."""
        quotas = await self._quotas()
        return await self.engine.write(
            ops.send_unicast, message, list(targets), self.backlog_cap, durable, quotas
        )

    async def send_unicast_batch(
        self, items: Sequence[tuple[Message, Sequence[str]]]
    ) -> list[UnicastResult]:
        """Commit several unicast messages atomically (the multi-message endpoints)."""
        quotas = await self._quotas()
        return await self.engine.write(
            ops.send_unicast_batch, [(m, list(t)) for m, t in items], self.backlog_cap, quotas
        )

    async def append_log(self, message: Message) -> int:
        """Commit a broadcast message once in its app's log; returns its offset."""
        return await self.engine.write(ops.append_log, message)

    async def catch_up(self, app_id: str, reg_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """:meth:`catch_up_to` without the log head."""
        return (await self.catch_up_to(app_id, reg_ids))[1]

    async def catch_up_to(
        self, app_id: str, reg_ids: Sequence[str]
    ) -> tuple[int, dict[str, list[Delivery]]]:
        """New broadcasts into the devices' inboxes (``ops_delivery.catch_up_to``), and the log
        head the devices' cursors now stand at."""
        quotas = await self._quotas()
        return await self.engine.write(
            ops_delivery.catch_up_to,
            app_id,
            list(reg_ids),
            self.clock.now_ms(),
            self.backlog_cap,
            quotas,
        )

    async def log_fanout(
        self, app_id: str, cursors: Mapping[str, int]
    ) -> tuple[int, dict[str, list[LogEntry]]]:
        """The log messages each connected, up-to-date device is to get past where the gateway
        stands with it (``cursors``); counted, but nothing stored per device."""
        quotas = await self._quotas()
        return await self.engine.write(
            ops_delivery.log_fanout, app_id, dict(cursors), self.clock.now_ms(), quotas
        )

    async def ack_log(
        self,
        app_id: str,
        moves: Mapping[str, tuple[int, int]],
        delivered: Sequence[tuple[str, int, str]],
    ) -> None:
        """Acked log broadcasts of one app: move the devices' cursors (regId → (slot, cursor)),
        count the deliveries they pass."""
        per_device = (await self.limits()).counting
        await self.engine.write(
            ops_delivery.ack_log,
            app_id,
            dict(moves),
            list(delivered),
            self.clock.now_ms(),
            per_device,
        )

    async def pending(self, reg_id: str, after_seq: int = 0, limit: int = 100) -> list[Delivery]:
        return await self.engine.read(
            ops_delivery.pending, reg_id, after_seq, self.clock.now_ms(), limit
        )

    async def ack(self, acks: Sequence[tuple[str, int, str]]) -> int:
        per_device = (await self.limits()).counting
        return await self.engine.write(
            ops_delivery.ack, list(acks), self.clock.now_ms(), per_device
        )

    async def topic_members(
        self,
        app_id: str,
        reg_ids: Sequence[str],
        kind: TargetKind,
        topics: Sequence[str],
        op: TopicOp,
    ) -> list[str]:
        return await self.engine.read(
            ops_delivery.topic_members, app_id, list(reg_ids), kind, list(topics), op
        )

    # privacy: policy versions, consent ledger, gating, stats
    async def add_policy_version(self, policy: PolicyVersion, make_current: bool = True) -> bool:
        return await self.engine.write(privacy_ops.add_policy_version, policy, make_current)

    async def policy_versions(self, app_id: str) -> list[PolicyVersion]:
        return await self.engine.read(privacy_ops.policy_versions, app_id)

    async def record_consent(
        self, reg_id: str, version: str | None, agreed: bool, source: str = "api"
    ) -> ConsentRecord | None:
        """Agree or withdraw for one device; committed before it returns."""
        return await self.engine.write(
            privacy_ops.record_consent, reg_id, version, agreed, self.clock.now_ms(), source
        )

    async def consent_records(self, app_id: str, subject: str | None = None) -> list[ConsentRecord]:
        return await self.engine.read(privacy_ops.consent_records, app_id, subject)

    async def consent_head(self, app_id: str) -> tuple[int, str]:
        return await self.engine.read(privacy_ops.consent_head, app_id)

    async def ledger_app_ids(self) -> list[str]:
        return await self.engine.read(privacy_ops.ledger_app_ids)

    async def consent_filter(
        self, app_id: str, reg_ids: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        return await self.engine.read(privacy_ops.consent_filter, app_id, list(reg_ids))

    async def message_counters(self, msg_id: str) -> dict[str, int]:
        return await self.engine.read(privacy_ops.message_counters, msg_id)

    # data-subject rights
    async def export_device(self, reg_id: str) -> dict[str, object] | None:
        return await self.engine.read(privacy_ops.export_device, reg_id)

    async def erase_device(self, reg_id: str) -> ConsentRecord | None:
        """Delete the device's data, then make the deletion reach the files (SQLite: the
        writer runs with ``secure_delete``; the WAL is checkpointed and truncated)."""
        rec = await self.engine.write(privacy_ops.erase_device, reg_id, self.clock.now_ms())
        if rec is not None:
            await self.engine.checkpoint()
        return rec

    # content review
    async def add_review_rule(self, rule: ReviewRule) -> None:
        await self.control.engine.write(review_ops.add_rule, rule)

    async def review_rules(self, app_id: str | None = None) -> list[ReviewRule]:
        return await self.control.engine.read(review_ops.list_rules, app_id)

    async def remove_review_rule(self, rule_id: str) -> bool:
        return await self.control.engine.write(review_ops.remove_rule, rule_id)

    async def audience(self, app_id: str, kind: TargetKind, topics: Sequence[str]) -> int:
        return await self.engine.read(review_ops.audience, app_id, kind, list(topics))

    async def log_review_decision(
        self, msg_id: str, app_id: str, decision: str, reason: str, actor: str
    ) -> None:
        await self.engine.write(
            review_ops.log_decision, msg_id, app_id, decision, reason, actor, self.clock.now_ms()
        )

    async def hold_message(self, message: Message, targets: Sequence[str], reason: str) -> None:
        """Commit a message to the review queue (nothing is delivered before approval)."""
        await self.engine.write(
            review_ops.hold, message, list(targets), reason, self.clock.now_ms()
        )

    async def held_messages(self, app_id: str | None = None, limit: int = 100) -> list[HeldMessage]:
        return await self.engine.read(review_ops.held_messages, app_id, limit)

    async def rejections(self, app_id: str, limit: int = 100) -> list[dict[str, object]]:
        return await self.engine.read(review_ops.rejections, app_id, limit)

    async def held_message(self, msg_id: str) -> HeldMessage | None:
        return await self.engine.read(review_ops.held_message, msg_id)

    async def decide_held(
        self, msg_id: str, approve: bool, actor: str, reason: str = ""
    ) -> tuple[HeldMessage, UnicastResult | None] | None:
        return await self.engine.write(
            review_ops.decide,
            msg_id,
            approve,
            actor,
            reason,
            self.clock.now_ms(),
            self.backlog_cap,
            await self._quotas(),
        )

    async def review_decisions(self, msg_id: str) -> list[dict[str, object]]:
        return await self.engine.read(review_ops.decisions, msg_id)

    # statistics and trace
    async def record_click(self, app_id: str, reg_id: str, msg_id: str) -> bool:
        """Count a device's click on a message once; False for unknown or repeated clicks."""
        return await self.engine.write(
            ops_stats.record_click, app_id, reg_id, msg_id, self.clock.now_ms()
        )

    async def message_stats(self, app_id: str, msg_id: str) -> MessageStats | None:
        return await self.engine.read(ops_stats.message_stats, app_id, msg_id)

    async def jobkey_stats(self, app_id: str, jobkey: str) -> MessageStats | None:
        return await self.engine.read(ops_stats.jobkey_stats, app_id, jobkey)

    async def stats_between(
        self, app_id: str, begin: int, end: int, limit: int = 100
    ) -> list[MessageStats]:
        return await self.engine.read(ops_stats.stats_between, app_id, begin, end, limit)

    async def sweep_stats(self, retention_days: int) -> int:
        """Delete message traces older than ``retention_days``; returns how many."""
        now = self.clock.now_ms()
        await self.engine.write(ops_limits.sweep, ops_stats.day_of(now - 86_400_000))
        return await self.engine.write(ops_stats.sweep_stats, now - retention_days * 86_400_000)

    async def daily_stats(self, app_id: str, first: str, last: str) -> dict[str, dict[str, int]]:
        return await self.engine.read(ops_stats.daily_stats, app_id, first, last)

    # scheduled jobs, withdrawing messages
    async def schedule(self, jobs: Sequence[ScheduledJob]) -> None:
        """Commit sends to fire at ``job.fire_at``; returns after the commit."""
        await self.engine.write(ops_jobs.schedule, list(jobs), self.clock.now_ms())

    async def send_and_schedule(
        self, items: Sequence[tuple[Message, Sequence[str]]], jobs: Sequence[ScheduledJob]
    ) -> list[UnicastResult]:
        quotas = await self._quotas()
        return await self.engine.write(
            ops_jobs.send_and_schedule,
            [(m, list(t)) for m, t in items],
            list(jobs),
            self.backlog_cap,
            self.clock.now_ms(),
            quotas,
        )

    async def due_jobs(self, limit: int = 100) -> list[str]:
        # polled by every region's scheduler a few times a second: one statement, no thread hop
        return await self.engine.read_now(ops_jobs.due, self.clock.now_ms(), limit)

    async def fire_job(self, job_id: str) -> FiredJob | None:
        """Claim a due job and commit its send, once however many nodes try."""
        quotas = await self._quotas()
        return await self.engine.write(
            ops_jobs.fire, job_id, self.clock.now_ms(), self.backlog_cap, quotas
        )

    async def job_exists(self, app_id: str, job_id: str) -> bool:
        return await self.engine.read(ops_jobs.job_exists, app_id, job_id)

    async def delete_job(self, app_id: str, job_id: str) -> bool:
        return await self.engine.write(ops_jobs.delete_job, app_id, job_id)

    async def delete_jobs_by_jobkey(self, app_id: str, jobkey: str) -> int:
        return await self.engine.write(ops_jobs.delete_jobs_by_jobkey, app_id, jobkey)

    async def delete_broadcast(self, app_id: str, msg_id: str) -> bool:
        return await self.engine.write(ops_jobs.delete_broadcast, app_id, msg_id)

    async def stop_messages(self, app_id: str, msg_ids: Sequence[str]) -> list[str]:
        return await self.engine.write(ops_jobs.stop_messages, app_id, list(msg_ids))

    async def messages_with_jobkey(self, app_id: str, jobkey: str) -> list[str]:
        return await self.engine.read(ops_jobs.messages_with_jobkey, app_id, jobkey)

    # channels and quotas
    async def add_channel(self, app_id: str, channel: Channel) -> None:
        await self.engine.write(ops_channels.add_channel, app_id, channel, self.clock.now_ms())

    async def list_channels(self, app_id: str) -> list[Channel]:
        return await self.engine.read(ops_channels.list_channels, app_id)

    async def get_channel(self, app_id: str, channel_id: str) -> Channel | None:
        # a point read on a send with extra.channel_id: no thread hop
        return await self.engine.read_now(ops_channels.get_channel, app_id, channel_id)

    async def discard_channel(self, app_id: str, channel_id: str) -> bool:
        return await self.engine.write(ops_channels.discard_channel, app_id, channel_id)

    # operator limits: a schedule with effective dates, cached in memory
    async def limits_schedule(self) -> list[LimitsEntry]:
        return await self.control.engine.read(ops_limits.schedule)

    async def set_limits(self, limits: Limits, effective_at: int | None = None) -> LimitsEntry:
        """Add an entry to the schedule (now, or announced for ``effective_at``)."""
        if self.control is not self:
            return await self.control.set_limits(limits, effective_at)
        now = self.clock.now_ms()
        entry = await self.engine.write(
            ops_limits.add_limits, limits, now if effective_at is None else effective_at, now
        )
        self._schedule_read_at = -float("inf")  # this node sees it at once; others within 1 s
        return entry

    async def limits(self) -> Limits:
        """The limits in effect now. The schedule is read at most once per ``limits_cache_s``
        (concurrent callers keep the previous copy meanwhile), so a send costs no read."""
        if self.control is not self:
            return await self.control.limits()
        at = time.monotonic()
        if at - self._schedule_read_at >= self.limits_cache_s:
            self._schedule_read_at = at
            self.limits_reads += 1
            try:
                self._schedule = await self.engine.read(ops_limits.schedule)
            except BaseException:
                self._schedule_read_at = -float("inf")
                raise
        entry = active_entry(self._schedule, self.clock.now_ms())
        return entry.limits if entry is not None else UNLIMITED

    async def _quotas(self) -> Mapping[str, int] | None:
        limits = await self.limits()
        return limits.quotas if limits.counting else None

    async def delivered_today(self, reg_id: str, category: str) -> int:
        """Messages of ``category`` the device acked today (UTC), counted while a quota is on."""
        day = ops_stats.day_of(self.clock.now_ms())
        counts = await self.engine.read(ops_limits.delivered_today, [reg_id], day, category)
        return counts.get(reg_id, 0)

    # receipts
    async def due_receipts(self, limit: int = 500) -> list[Receipt]:
        return await self.engine.read(ops_receipts.due_receipts, self.clock.now_ms(), limit)

    async def claim_receipts(self, limit: int = 500, lease_ms: int = 30_000) -> list[Receipt]:
        """Due receipts, leased to this node for ``lease_ms`` (no other node sends them)."""
        return await self.engine.write(
            ops_receipts.claim_receipts, self.clock.now_ms(), limit, lease_ms
        )

    async def receipts_sent(self, receipt_ids: Sequence[str]) -> None:
        await self.engine.write(ops_receipts.receipts_sent, list(receipt_ids))

    async def receipts_failed(
        self, receipt_ids: Sequence[str], retry_in_ms: int, max_attempts: int
    ) -> int:
        """Count a failed attempt; returns how many receipts were dropped for good."""
        return await self.engine.write(
            ops_receipts.receipts_failed,
            list(receipt_ids),
            self.clock.now_ms() + retry_in_ms,
            max_attempts,
        )

    async def receipt_key(self, app_id: str) -> str:
        """The app's key for verifying receipts (Standard Webhooks ``whsec_…``)."""
        return await self.engine.write(ops_receipts.receipt_key, app_id)

    # feedback
    async def take_invalid_regids(self, app_id: str, limit: int = 1000) -> list[str]:
        """RegIds that stopped working, oldest first; each is returned once, then forgotten."""
        return await self.engine.write(ops_feedback.take_invalid, app_id, ops_feedback.REGID, limit)

    async def take_invalid_aliases(self, app_id: str, limit: int = 1000) -> list[str]:
        return await self.engine.write(ops_feedback.take_invalid, app_id, ops_feedback.ALIAS, limit)

    async def known_regids(self, app_id: str, reg_ids: Sequence[str]) -> set[str]:
        return await self.engine.read(ops.known_regids, app_id, list(reg_ids))

    # Web Push (browser subscriptions, RFC 8030)
    async def webpush_subscribe(
        self, uaid: str, channel_id: str, key: str | None, token: str, most: int
    ) -> str | None:
        """The channel's endpoint token (``token`` if it is new); None when refused."""
        return await self.engine.write(
            ops_webpush.subscribe, uaid, channel_id, key, token, self.clock.now_ms(), most
        )

    async def webpush_unsubscribe(self, uaid: str, channel_id: str) -> bool:
        return await self.engine.write(ops_webpush.unsubscribe, uaid, channel_id)

    async def webpush_channel(self, token: str) -> tuple[str, str, str | None] | None:
        """(uaid, channelID, application server key) of an endpoint token."""
        return await self.engine.read_now(ops_webpush.channel, token)

    async def webpush_has_channels(self, uaid: str) -> bool:
        return await self.engine.read_now(ops_webpush.has_channels, uaid)

    async def webpush_add(
        self, token: str, uaid: str, msg: WebPushMessage, topic: str | None, most: int
    ) -> str:
        """Keep a message: "kept", or "full" (``most`` wait already) or "gone" (unsubscribed)."""
        return await self.engine.write(
            ops_webpush.add_message, token, uaid, msg, topic, self.clock.now_ms(), most
        )

    async def webpush_pending(self, uaid: str, limit: int = 100) -> list[WebPushMessage]:
        return await self.engine.read(ops_webpush.pending, uaid, self.clock.now_ms(), limit)

    async def webpush_ack(self, uaid: str, versions: list[str]) -> None:
        await self.engine.write(ops_webpush.ack, uaid, versions)

    async def webpush_delete(self, version: str) -> bool:
        return await self.engine.write(ops_webpush.delete_message, version)

    async def sweep_expired(self) -> tuple[int, int]:
        return await self.engine.write(ops_delivery.sweep_expired, self.clock.now_ms())

    async def counts(self) -> dict[str, int]:
        return await self.engine.read(ops.counts)


def _migrate(tx: ops.Tx, engine_name: str) -> int:
    if engine_name == "postgres":  # two nodes starting at once must not both migrate
        tx.execute("SELECT pg_advisory_xact_lock(7470)")
    return ops.migrate(tx, "sqlite" if engine_name == "sqlite" else "postgres")

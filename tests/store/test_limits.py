"""The limits schedule, per-device delivered counts and over-quota sends, on both engines."""

from __future__ import annotations

import dataclasses
import json

from tests.store.test_contract import _app_and_devices, _msg
from tidings.clock import ManualClock
from tidings.core.models import Channel, Notification, TargetKind
from tidings.core.quotas import UNLIMITED, Limits, TokenBuckets, active_entry
from tidings.store import ops
from tidings.store.schema import MIGRATIONS
from tidings.store.store import Store

DAY = 86_400_000


def _cb(store: Store, app_id: str, types: str, **extra: str):  # type: ignore[no-untyped-def]
    note = Notification(
        title="t",
        description="d",
        extra={"callback": "http://x.example/r", "callback.type": types, **extra},
    )
    return dataclasses.replace(_msg(store, app_id, TargetKind.REGID), notification=note)


async def test_schedule_with_effective_dates(store: Store) -> None:
    assert await store.limits() == UNLIMITED and await store.limits_schedule() == []
    clock = store.clock
    assert isinstance(clock, ManualClock)
    now = clock.now_ms()
    later = await store.set_limits(Limits.of("mipush", qps=50), now + DAY)
    assert await store.limits() == UNLIMITED  # announced, not in effect yet
    clock.advance(DAY)
    got = await store.limits()  # cached schedule, chosen by the clock: no new read needed
    assert got.preset == "mipush" and got.quotas == {"default": 1, "public": 5} and got.qps == 50
    await store.set_limits(Limits.of("unlimited"))
    assert await store.limits() == Limits("unlimited", {}, None)
    schedule = await store.limits_schedule()
    assert [e.limits.preset for e in schedule] == ["mipush", "unlimited"]
    assert schedule[0].limits_id == later.limits_id
    assert active_entry(schedule, now) is None


async def test_limits_are_cached_between_reads(store: Store) -> None:
    store.limits_cache_s = 60.0
    await store.limits()
    reads = store.limits_reads
    for _ in range(100):
        await store.limits()
    assert store.limits_reads == reads


async def test_deliveries_count_per_device_only_while_a_quota_is_on(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 2)
    first = _msg(store, app_id, TargetKind.REGID)
    await store.send_unicast(first, regs)
    await store.ack([(regs[0], 1, first.msg_id)])
    assert await store.delivered_today(regs[0], "default") == 0  # unlimited: not counted
    await store.set_limits(Limits.of("mipush"))
    await store.ack([(regs[1], 1, first.msg_id)])
    assert await store.delivered_today(regs[1], "default") == 1
    # regs[1] is at its quota of 1: left out, reported with its count; regs[0] still gets it
    second = _cb(store, app_id, "128")
    res = await store.send_unicast(second, regs)
    assert res.reg_ids == (regs[0],) and res.over_quota == ((regs[1], 1),) and res.quota == 1
    [receipt] = await store.due_receipts()
    assert (receipt.type, receipt.targets) == (128, regs[1])
    assert json.loads(receipt.extra or "") == {"ack": "1", "quota": "1"}
    await store.ack([(regs[0], 2, second.msg_id)])
    # everyone over quota: nothing stored, no receipt (the API answers 200001)
    third = _cb(store, app_id, "128")
    res = await store.send_unicast(third, regs)
    assert res.reg_ids == () and len(res.over_quota) == 2
    assert await store.message_stats(app_id, third.msg_id) is None
    assert len(await store.due_receipts()) == 1
    # private channels have no quota; the count starts again the next UTC day
    await store.add_channel(app_id, Channel("im", "IM", category="private"))
    private = _cb(store, app_id, "128", channel_id="im")
    assert (await store.send_unicast(private, regs)).reg_ids == tuple(regs)
    assert isinstance(store.clock, ManualClock)
    store.clock.advance(DAY)
    assert (await store.send_unicast(_msg(store, app_id, TargetKind.REGID), regs)).reg_ids == (
        tuple(regs)
    )
    assert await store.sweep_stats(90) == 0
    assert await store.delivered_today(regs[0], "default") == 0


async def test_push_disabled_receipt_for_devices_without_consent(store: Store) -> None:
    new = await store.create_app("Gated", "com.example.gated", "v1")
    from tidings.core.models import DeviceInfo

    reg = await store.register_device(new.app.app_id, "u1", DeviceInfo())
    msg = _cb(store, new.app.app_id, "32")
    res = await store.send_unicast(msg, [reg])
    assert res.filtered == (reg,)
    [receipt] = await store.due_receipts()
    assert (receipt.type, receipt.targets, receipt.msg_id) == (32, reg, msg.msg_id)


async def test_migrations_apply_each_missing_version_once(store: Store) -> None:
    # versions are applied by set, not by max: a database that has 5 but not 4 (another
    # branch's) would still get 4; running again applies nothing
    dialect = "sqlite" if store.engine.name == "sqlite" else "postgres"
    latest = max(v for v, _ in MIGRATIONS)
    assert await store.engine.write(ops.migrate, dialect) == latest
    assert await store.schema_version() == latest


def test_token_bucket() -> None:
    buckets = TokenBuckets()
    assert all(buckets.take("a", 3, now=10.0) for _ in range(3))
    assert not buckets.take("a", 3, now=10.0)
    assert buckets.take("b", 3, now=10.0)  # per key
    assert buckets.take("a", 3, now=10.34)  # refilled at 3 per second
    assert not buckets.take("a", 3, now=10.35)

"""Statistics contract: exact per-message and per-day counters on both engines."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.store.test_contract import _app_and_devices
from tests.store.test_contract import _msg as _plain_msg
from tidings.clock import ManualClock
from tidings.core.models import Message, Notification, TargetKind
from tidings.store.store import Store

DAY1, DAY2 = "20231114", "20231115"  # ManualClock starts at 2023-11-14 22:13:20 UTC


def _msg(store: Store, app_id: str, kind: TargetKind, jobkey: str = "", **kw: Any) -> Message:
    m = _plain_msg(store, app_id, kind, **kw)
    if not jobkey:
        return m
    note = Notification(title="t", description="d", extra={"jobkey": jobkey})
    return dataclasses.replace(m, notification=note)


async def test_unicast_counts_resolved_invalid_and_delivered_once(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 3)
    m = _msg(store, app_id, TargetKind.REGID, jobkey="x")
    await store.send_unicast(m, [regs[0], regs[1], "ghost", regs[1]])
    s = await store.message_stats(app_id, m.msg_id)
    assert s is not None
    assert (s.raw_counter, s.resolved, s.invalid_target, s.delivered) == (3, 2, 1, 0)
    assert s.ttl_ms == 60_000 and s.kind == "regid"
    await store.ack([(regs[0], 1, m.msg_id), (regs[0], 1, m.msg_id)])
    await store.ack([(regs[0], 1, m.msg_id), (regs[1], 1, "not-it")])  # repeats count nothing
    s = await store.message_stats(app_id, m.msg_id)
    assert s is not None and s.delivered == 1
    assert await store.message_stats("other-app", m.msg_id) is None
    days = await store.daily_stats(app_id, DAY1, DAY1)
    assert days[DAY1]["single_recipients"] == 2 and days[DAY1]["regid_recipients"] == 2
    assert days[DAY1]["received"] == 1


async def test_alias_and_account_recipients(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 3)
    await store.set_alias(app_id, regs[0], "alice")
    await store.set_account(regs[1], "acct")
    await store.set_account(regs[2], "acct")
    await store.send_unicast(_msg(store, app_id, TargetKind.ALIAS), ["alice", "bob"])
    m = _msg(store, app_id, TargetKind.ACCOUNT)
    await store.send_unicast(m, ["acct"])
    s = await store.message_stats(app_id, m.msg_id)
    assert s is not None and (s.raw_counter, s.resolved, s.invalid_target) == (1, 2, 0)
    day = (await store.daily_stats(app_id, DAY1, DAY1))[DAY1]
    assert day["alias_recipients"] == 1 and day["useraccount_recipients"] == 2
    assert day["single_recipients"] == 3 and day["broadcast_recipients"] == 0


async def test_broadcast_resolves_on_catch_up_and_counts_clicks_once(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, ManualClock)
    app_id, regs = await _app_and_devices(store, 3)
    m = _msg(store, app_id, TargetKind.ALL, ttl=86_400_000)
    await store.append_log(m)
    s = await store.message_stats(app_id, m.msg_id)
    assert s is not None and s.resolved == 0
    await store.catch_up(app_id, regs[:2])
    clock.advance(2 * 3600_000)  # the next UTC day
    await store.catch_up(app_id, regs)
    await store.catch_up(app_id, regs)  # nothing new: counts nothing
    s = await store.message_stats(app_id, m.msg_id)
    assert s is not None and (s.raw_counter, s.resolved) == (3, 3)
    for r in regs[:2]:
        await store.ack([(r, 1, m.msg_id)])
    assert await store.record_click(app_id, regs[0], m.msg_id)
    assert not await store.record_click(app_id, regs[0], m.msg_id)  # once per device
    assert not await store.record_click("other-app", regs[1], m.msg_id)
    assert not await store.record_click(app_id, regs[1], "no-such-message")
    s = await store.message_stats(app_id, m.msg_id)
    assert s is not None and (s.delivered, s.click) == (2, 1)
    days = await store.daily_stats(app_id, DAY1, DAY2)
    assert days[DAY1]["broadcast_recipients"] == 2
    assert days[DAY2]["broadcast_recipients"] == 1
    assert (days[DAY2]["received"], days[DAY2]["click"]) == (2, 1)


async def test_trace_by_jobkey_and_time_range(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, ManualClock)
    app_id, regs = await _app_and_devices(store, 2)
    sent = []
    for i in range(4):
        m = _msg(store, app_id, TargetKind.REGID, jobkey="batch" if i < 3 else "other")
        await store.send_unicast(m, [regs[i % 2]])
        sent.append(m)
        clock.advance(1000)
    job = await store.jobkey_stats(app_id, "batch")
    assert job is not None and job.msg_id == "batch" and job.resolved == 3
    assert job.created_at == sent[0].created_at
    assert await store.jobkey_stats(app_id, "nope") is None
    t0 = sent[0].created_at
    found = await store.stats_between(app_id, t0 + 1000, t0 + 3000, limit=2)
    assert [s.msg_id for s in found] == [sent[3].msg_id, sent[2].msg_id]
    assert await store.stats_between(app_id, t0 + 10_000, t0 + 20_000, limit=100) == []


async def test_old_traces_are_swept_daily_counters_kept(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, ManualClock)
    app_id, regs = await _app_and_devices(store, 1)
    old = _msg(store, app_id, TargetKind.REGID)
    await store.send_unicast(old, regs)
    await store.record_click(app_id, regs[0], old.msg_id)
    clock.advance(3 * 86_400_000)
    new = _msg(store, app_id, TargetKind.REGID)
    await store.send_unicast(new, regs)
    assert await store.sweep_stats(retention_days=2) == 1
    assert await store.message_stats(app_id, old.msg_id) is None
    assert await store.message_stats(app_id, new.msg_id) is not None
    assert (await store.daily_stats(app_id, DAY1, DAY1))[DAY1]["click"] == 1

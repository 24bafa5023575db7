"""Receipts contract: queued with their event, leased, retried, dropped; both engines."""

from __future__ import annotations

import asyncio
import dataclasses

from tests.store.test_contract import _app_and_devices, _msg
from tidings.clock import ManualClock
from tidings.core.models import Notification, TargetKind
from tidings.store.store import Store


def _with_callback(store: Store, app_id: str, kind: TargetKind, types: str = "19"):  # type: ignore[no-untyped-def]
    extra = {"callback": "http://example.com/cb", "callback.type": types, "callback.param": "p"}
    note = Notification(title="t", description="d", extra=extra)
    return dataclasses.replace(_msg(store, app_id, kind), notification=note)


async def test_events_queue_the_receipts_asked_for(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 2)
    m = _with_callback(store, app_id, TargetKind.REGID)
    await store.send_unicast(m, [regs[0], regs[1], "ghost"])
    await store.ack([(regs[0], 1, m.msg_id), (regs[1], 1, m.msg_id)])
    await store.ack([(regs[0], 1, m.msg_id)])  # a repeated ack queues nothing
    await store.record_click(app_id, regs[0], m.msg_id)
    await store.record_click(app_id, regs[0], m.msg_id)
    quiet = _with_callback(store, app_id, TargetKind.REGID, types="2")
    await store.send_unicast(quiet, [regs[0], "ghost"])
    await store.ack([(regs[0], 2, quiet.msg_id)])  # only clicks wanted: nothing
    got = await store.claim_receipts()
    kinds = sorted((r.type, r.targets) for r in got)
    assert kinds == [
        (1, ",".join(sorted(regs)) if False else kinds[0][1]),
        (2, regs[0]),
        (16, "ghost"),
    ]
    assert sorted(kinds[0][1].split(",")) == sorted(regs)
    assert {r.msg_id for r in got} == {m.msg_id} and {r.param for r in got} == {"p"}


async def test_claims_lease_retry_and_drop(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, ManualClock)
    app_id, regs = await _app_and_devices(store, 1)
    for _ in range(3):
        m = _with_callback(store, app_id, TargetKind.REGID, types="16")
        await store.send_unicast(m, [regs[0], "ghost"])
    claims = await asyncio.gather(*(store.claim_receipts(lease_ms=10_000) for _ in range(3)))
    ids = [r.receipt_id for c in claims for r in c]
    assert len(ids) == 3 == len(set(ids))  # concurrent claims never share a receipt
    assert await store.claim_receipts() == []  # leased
    clock.advance(10_000)
    again = await store.claim_receipts()
    assert len(again) == 3  # the lease ran out: due again
    await store.receipts_sent([again[0].receipt_id])
    assert await store.receipts_failed([r.receipt_id for r in again[1:]], 1000, 2) == 0
    clock.advance(1000)
    retry = await store.claim_receipts()
    assert [r.attempts for r in retry] == [1, 1]
    assert await store.receipts_failed([r.receipt_id for r in retry], 1000, 2) == 2  # dropped
    clock.advance(60_000)
    assert await store.claim_receipts() == []
    key = await store.receipt_key(app_id)
    assert key.startswith("whsec_") and await store.receipt_key(app_id) == key
    other = await store.create_app("Other", "com.example.other")
    assert await store.receipt_key(other.app.app_id) != key


async def test_expired_undelivered_messages_get_a_receipt(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, ManualClock)
    app_id, regs = await _app_and_devices(store, 2)
    m = _with_callback(store, app_id, TargetKind.REGID, types="1024")
    await store.send_unicast(m, regs)
    await store.ack([(regs[0], 1, m.msg_id)])
    clock.advance(60_000)  # the message's time to live
    assert await store.sweep_expired() == (1, 1)
    [r] = await store.claim_receipts()
    assert (r.type, r.targets, r.msg_id) == (1024, regs[1], m.msg_id)

"""Device filters in the store, on both engines: who gets a message, who counts as unmatched."""

from __future__ import annotations

import dataclasses

from tests.store.test_contract import _msg
from tidings.core.models import DeviceInfo, Notification, TargetKind
from tidings.store.store import Store


async def _devices(store: Store) -> tuple[str, list[str]]:
    new = await store.create_app("Demo", "com.example.demo")
    app_id = new.app.app_id
    infos = [DeviceInfo(locale="zh_CN", model="MI 9"), DeviceInfo(locale="en_US"), DeviceInfo()]
    regs = [await store.register_device(app_id, f"u{i}", info) for i, info in enumerate(infos)]
    return app_id, regs


def _filtered(store: Store, app_id: str, kind: TargetKind, **extra: str):  # type: ignore[no-untyped-def]
    note = Notification(title="t", description="d", extra={"callback": "http://x/", **extra})
    return dataclasses.replace(_msg(store, app_id, kind), notification=note)


async def test_unicast_filters(store: Store) -> None:
    app_id, regs = await _devices(store)
    m = _filtered(store, app_id, TargetKind.REGID, locale="zh_CN", **{"callback.type": "64"})
    res = await store.send_unicast(m, [*regs, "ghost"])
    assert res.reg_ids == (regs[0],) and sorted(res.unmatched) == sorted(regs[1:])
    assert [d.msg_id for d in await store.pending(regs[0])] == [m.msg_id]
    assert await store.pending(regs[1]) == []
    s = await store.message_stats(app_id, m.msg_id)
    assert s is not None
    assert (s.raw_counter, s.resolved, s.invalid_target, s.device_condition_unmatch) == (4, 1, 1, 2)
    [receipt] = await store.claim_receipts()
    assert receipt.type == 64 and sorted(receipt.targets.split(",")) == sorted(regs[1:])
    none = _filtered(store, app_id, TargetKind.REGID, model="Pixel")
    res = await store.send_unicast(none, regs)
    assert res.reg_ids == () and len(res.unmatched) == 3  # stored for the trace, sent to nobody
    s = await store.message_stats(app_id, none.msg_id)
    assert s is not None and (s.resolved, s.device_condition_unmatch) == (0, 3)


async def test_broadcast_filters_at_catch_up(store: Store) -> None:
    app_id, regs = await _devices(store)
    m = _filtered(store, app_id, TargetKind.ALL, locale_not_in="zh_CN")
    plain = _msg(store, app_id, TargetKind.ALL)
    await store.append_log(m)
    await store.append_log(plain)
    await store.catch_up(app_id, regs)
    assert [d.msg_id for d in await store.pending(regs[0])] == [plain.msg_id]
    for r in regs[1:]:
        assert [d.msg_id for d in await store.pending(r)] == [m.msg_id, plain.msg_id]
    s = await store.message_stats(app_id, m.msg_id)
    assert s is not None and (s.raw_counter, s.resolved, s.device_condition_unmatch) == (3, 2, 1)

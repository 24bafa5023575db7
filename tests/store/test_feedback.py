"""Feedback contract: invalid regIds and aliases are recorded, handed out once, bounded per call."""

from __future__ import annotations

from tests.store.test_contract import _app_and_devices, _msg
from tidings.core.models import TargetKind
from tidings.store.store import Store


async def test_unregister_and_unknown_targets_become_feedback(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 2)
    await store.set_alias(app_id, regs[0], "alice")
    await store.unregister_device(regs[0])
    await store.send_unicast(_msg(store, app_id, TargetKind.REGID), [regs[1], "ghost", "ghost"])
    await store.send_unicast(_msg(store, app_id, TargetKind.ALIAS), ["bob"])
    other = await store.create_app("Other", "com.example.other")
    assert await store.take_invalid_regids(other.app.app_id) == []
    assert sorted(await store.take_invalid_regids(app_id)) == sorted([regs[0], "ghost"])
    assert await store.take_invalid_regids(app_id) == []  # deleted once returned
    assert sorted(await store.take_invalid_aliases(app_id)) == ["alice", "bob"]


async def test_feedback_is_bounded_and_a_reused_alias_is_forgotten(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 1)
    await store.send_unicast(_msg(store, app_id, TargetKind.REGID), [f"g{i}" for i in range(5)])
    first = await store.take_invalid_regids(app_id, limit=3)
    rest = await store.take_invalid_regids(app_id, limit=3)
    assert len(first) == 3 and len(rest) == 2 and set(first).isdisjoint(rest)
    await store.send_unicast(_msg(store, app_id, TargetKind.ALIAS), ["carol"])
    await store.set_alias(app_id, regs[0], "carol")
    assert await store.take_invalid_aliases(app_id) == []
    assert await store.known_regids(app_id, [regs[0], "g1"]) == {regs[0]}

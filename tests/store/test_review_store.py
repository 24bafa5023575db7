"""Review rules, the held queue and the decision log on both engines."""

from __future__ import annotations

from tidings import ids
from tidings.compliance import moderation
from tidings.compliance.models import Verdict
from tidings.core.models import DeviceInfo, Message, Notification, TargetKind
from tidings.store.store import Store


def _msg(store: Store, app_id: str, kind: TargetKind, ttl: int = 60_000) -> Message:
    now = store.clock.now_ms()
    topics = ("news",) if kind is TargetKind.TOPIC else ()
    return Message(ids.message_id(), app_id, kind, Notification(title="t"), now, now + ttl, topics)


async def test_rules_are_data(store: Store) -> None:
    a = (await store.create_app("Demo", "com.example.demo")).app.app_id
    b = (await store.create_app("Other", "com.example.other")).app.app_id
    g = await moderation.add_rule(store, "term", "casino")
    mine = await moderation.add_rule(store, "link_deny", "evil.example", a, "hold")
    assert mine.action is Verdict.HOLD and g.app_id is None
    assert {r.rule_id for r in await store.review_rules(a)} == {g.rule_id, mine.rule_id}
    assert [r.rule_id for r in await store.review_rules(b)] == [g.rule_id]
    assert len(await store.review_rules()) == 2
    assert await store.remove_review_rule(g.rule_id)
    assert not await store.remove_review_rule(g.rule_id)


async def test_hold_then_approve_reject_expire(store: Store) -> None:
    a = (await store.create_app("Demo", "com.example.demo")).app.app_id
    reg = await store.register_device(a, "u1", DeviceInfo())
    await store.subscribe(a, [reg], "news")
    assert await store.audience(a, TargetKind.TOPIC, ["news"]) == 1
    assert await store.audience(a, TargetKind.ALL, []) == 1
    uni, bc, late, no = (
        _msg(store, a, TargetKind.REGID),
        _msg(store, a, TargetKind.TOPIC),
        _msg(store, a, TargetKind.REGID, ttl=10),
        _msg(store, a, TargetKind.REGID),
    )
    for m in (uni, bc, late, no):
        await store.hold_message(m, [reg] if not m.kind.is_broadcast else [], "r")
    assert len(await store.held_messages(a)) == 4
    assert await store.pending(reg) == []
    store.clock.advance(20)  # type: ignore[attr-defined]
    done = await store.decide_held(uni.msg_id, True, "ann")
    assert done is not None and done[0].status == "approved" and done[1].reg_ids == (reg,)  # type: ignore[union-attr]
    assert (await store.decide_held(late.msg_id, True, "ann"))[0].status == "expired"  # type: ignore[index]
    assert (await store.decide_held(no.msg_id, False, "bob", "spam"))[0].status == "rejected"  # type: ignore[index]
    assert await store.decide_held(no.msg_id, True, "ann") is None  # decided already
    assert (await store.decide_held(bc.msg_id, True, "ann"))[0].status == "approved"  # type: ignore[index]
    await store.catch_up(a, [reg])
    assert [d.msg_id for d in await store.pending(reg)] == [uni.msg_id, bc.msg_id]
    assert await store.held_messages(a) == []
    log = await store.review_decisions(no.msg_id)
    assert [(d["decision"], d["actor"], d["reason"]) for d in log] == [
        ("hold", "rules", "r"),
        ("rejected", "bob", "spam"),
    ]

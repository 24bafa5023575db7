"""Consent ledger, policy versions and consent gating on both engines."""

from __future__ import annotations

from tidings import ids
from tidings.compliance import consent
from tidings.compliance.models import PolicyVersion
from tidings.core.models import DeviceInfo, Message, Notification, TargetKind
from tidings.store.privacy_ops import subject_of
from tidings.store.store import Store


def _msg(store: Store, app_id: str, kind: TargetKind = TargetKind.REGID) -> Message:
    now = store.clock.now_ms()
    return Message(ids.message_id(), app_id, kind, Notification(title="t"), now, now + 60_000)


async def test_policy_versions_and_accepted_set(store: Store) -> None:
    new = await store.create_app("Demo", "com.example.demo")
    a = new.app.app_id
    await consent.add_policy(store, a, "v1", "https://e.example/p1", published_at=1)
    await consent.add_policy(
        store, a, "v1.1", "https://e.example/p11", published_at=2, requires_fresh_consent=False
    )
    assert [p.version for p in await store.policy_versions(a)] == ["v1", "v1.1"]
    assert (await store.app_by_id(a)).privacy_policy_version == "v1.1"  # type: ignore[union-attr]
    old = await store.register_device(a, "u1", DeviceInfo(consent_version="v1"))
    none = await store.register_device(a, "u2", DeviceInfo())
    assert await store.consent_filter(a, [old, none]) == ([old], [none])
    await store.add_policy_version(PolicyVersion(a, "v2", "https://e.example/p2", 3, True))
    assert await store.consent_filter(a, [old, none]) == ([], [old, none])


async def test_ungated_app_delivers_without_consent(store: Store) -> None:
    new = await store.create_app("Demo", "com.example.demo")
    reg = await store.register_device(new.app.app_id, "u1", DeviceInfo())
    res = await store.send_unicast(_msg(store, new.app.app_id), [reg])
    assert res.reg_ids == (reg,) and res.filtered == ()
    assert len(await store.pending(reg)) == 1


async def test_gating_at_send_and_delivery_time_with_stats(store: Store) -> None:
    new = await store.create_app("Demo", "com.example.demo", "v1")
    a = new.app.app_id
    yes = await store.register_device(a, "u1", DeviceInfo(consent_version="v1"))
    no = await store.register_device(a, "u2", DeviceInfo())
    m = _msg(store, a)
    res = await store.send_unicast(m, [yes, no])
    assert res.reg_ids == (yes,) and res.filtered == (no,)
    assert await store.message_counters(m.msg_id) == {"filtered_consent": 1}
    assert await store.pending(no) == []
    # withdrawal drops what is queued and counts it
    assert len(await store.pending(yes)) == 1
    await consent.withdraw(store, yes)
    assert await store.pending(yes) == []
    assert await store.message_counters(m.msg_id) == {"filtered_consent": 2}
    # broadcasts: catch-up skips the unconsented device for good
    b = _msg(store, a, TargetKind.ALL)
    await store.append_log(b)
    assert await store.catch_up(a, [yes, no]) == {}
    assert await store.message_counters(b.msg_id) == {"filtered_consent": 2}
    await consent.agree(store, no, "v1")
    assert await store.catch_up(a, [no]) == {}  # the cursor moved on: no late delivery
    assert await store.pending(no) == []
    m2 = _msg(store, a)
    assert (await store.send_unicast(m2, [no, yes])).reg_ids == (no,)


async def test_ledger_chain_records_and_verify(store: Store) -> None:
    new = await store.create_app("Demo", "com.example.demo", "v1")
    a = new.app.app_id
    reg = await store.register_device(a, "u1", DeviceInfo(consent_version="v1", app_version="3"))
    await store.register_device(a, "u1", DeviceInfo(consent_version="v1"))  # no change: no row
    await consent.withdraw(store, reg)
    await consent.agree(store, reg, "v1", source="sdk")
    hist = await consent.history(store, a, reg)
    assert [(r.seq, r.action, r.source) for r in hist] == [
        (1, "agreed", "sdk"),
        (2, "withdrawn", "api"),
        (3, "agreed", "sdk"),
    ]
    assert hist[0].app_version == "3" and hist[0].subject == subject_of(a, reg)
    assert reg not in repr(hist)
    assert hist[1].prev_hash == hist[0].hash
    assert await consent.verify(store) == []


async def test_verify_finds_a_tampered_row(store: Store) -> None:
    new = await store.create_app("Demo", "com.example.demo", "v1")
    a = new.app.app_id
    for i in range(5):
        await store.register_device(a, f"u{i}", DeviceInfo(consent_version="v1"))

    def tamper(tx, app_id):  # type: ignore[no-untyped-def]
        tx.execute(
            "UPDATE consent_ledger SET policy_version = 'v0' WHERE app_id = ? AND seq = 3",
            (app_id,),
        )

    await store.engine.write(tamper, a)
    problems = await consent.verify(store, a)
    assert [(p.seq, p.problem) for p in problems] == [(3, "record was changed")]

    def drop_last(tx, app_id):  # type: ignore[no-untyped-def]
        tx.execute("DELETE FROM consent_ledger WHERE app_id = ? AND seq = 5", (app_id,))

    await store.engine.write(drop_last, a)
    assert any("missing" in p.problem for p in await consent.verify(store, a))


async def test_export_and_erase(store: Store) -> None:
    from tidings.compliance import erasure

    new = await store.create_app("Demo", "com.example.demo", "v1")
    a = new.app.app_id
    reg = await store.register_device(a, "u1", DeviceInfo(consent_version="v1", model="X1"))
    other = await store.register_device(a, "u2", DeviceInfo(consent_version="v1"))
    await store.set_alias(a, reg, "al")
    await store.set_account(reg, "acc")
    await store.subscribe(a, [reg, other], "news")
    m = _msg(store, a)
    await store.send_unicast(m, [reg, other])
    data = await erasure.export(store, reg)
    assert data["device"]["model"] == "X1" and data["aliases"] == ["al"]  # type: ignore[index]
    assert [i["msg_id"] for i in data["inbox"]] == [m.msg_id]  # type: ignore[attr-defined]
    rec = await erasure.erase(store, reg)
    assert rec.action == "erased" and rec.subject == subject_of(a, reg)
    assert await store.get_device(reg) is None
    assert await store.resolve_targets(a, TargetKind.ALIAS, ["al"]) == ([], ["al"])
    assert await store.resolve_targets(a, TargetKind.ACCOUNT, ["acc"]) == ([], ["acc"])
    assert await store.pending(reg) == []
    assert len(await store.pending(other)) == 1  # others untouched
    assert await consent.verify(store) == []


async def test_erasure_strips_the_device_from_held_review_targets(store: Store) -> None:
    from tidings.compliance import erasure

    new = await store.create_app("Demo", "com.example.demo")
    a = new.app.app_id
    reg = await store.register_device(a, "u1", DeviceInfo())
    await store.set_alias(a, reg, "al")
    m_reg, m_alias = _msg(store, a), _msg(store, a, TargetKind.ALIAS)
    await store.hold_message(m_reg, [reg, "other-reg"], "r")
    await store.hold_message(m_alias, ["al"], "r")
    await erasure.erase(store, reg)
    assert (await store.held_message(m_reg.msg_id)).targets == ("other-reg",)  # type: ignore[union-attr]
    assert (await store.held_message(m_alias.msg_id)).targets == ()  # type: ignore[union-attr]


async def test_log_fanout_of_broadcasts_to_all_by_cursor_and_consent(store: Store) -> None:
    new = await store.create_app("Demo", "com.example.demo", "v1")
    a = new.app.app_id
    yes1, yes2, yes3 = [
        await store.register_device(a, f"u{i}", DeviceInfo(consent_version="v1")) for i in range(3)
    ]
    no = await store.register_device(a, "u9", DeviceInfo())
    m1, m2 = _msg(store, a, TargetKind.ALL), _msg(store, a, TargetKind.ALL)
    await store.append_log(m1)
    await store.append_log(m2)
    head, new_entries = await store.log_fanout(a, {yes1: 0, yes2: 0, yes3: 1, no: 0})
    assert head == 2
    got = {r: [e.msg_id for e in entries] for r, entries in new_entries.items()}
    assert got == {yes1: [m1.msg_id, m2.msg_id], yes2: [m1.msg_id, m2.msg_id], yes3: [m2.msg_id]}
    assert new_entries[yes1] is new_entries[yes2]  # one list per cursor, shared
    s1, s2 = await store.message_stats(a, m1.msg_id), await store.message_stats(a, m2.msg_id)
    assert s1 is not None and s2 is not None
    assert (s1.resolved, s2.resolved) == (2, 3)
    assert await store.message_counters(m1.msg_id) == {"filtered_consent": 1}
    assert await store.message_counters(m2.msg_id) == {"filtered_consent": 1}


async def test_erasure_leaves_no_trace_of_regid_alias_or_account(store: Store) -> None:
    """Every table, read whole after the erasure: the regId, alias and account are nowhere
    (clicks, queued receipts and scheduled jobs held them too)."""
    import dataclasses

    from tidings.compliance import erasure
    from tidings.core.models import ScheduledJob
    from tidings.store import ops_receipts

    new = await store.create_app("Demo", "com.example.demo")
    a = new.app.app_id
    reg = await store.register_device(a, "u1", DeviceInfo())
    other = await store.register_device(a, "u2", DeviceInfo())
    await store.set_alias(a, reg, "al-erased")
    await store.set_account(reg, "acc-erased")
    m = _msg(store, a)
    await store.send_unicast(m, [reg, other])
    assert await store.record_click(a, reg, m.msg_id)
    for targets in ([reg], [reg, other]):
        await store.engine.write(
            ops_receipts.add_receipt, a, m.msg_id, 1, targets, 0, ("http://x.test/", None, 3, None)
        )
    later = store.clock.now_ms() + 3_600_000
    for kind, targets in ((TargetKind.ALIAS, ["al-erased"]), (TargetKind.REGID, [reg, other])):
        job = _msg(store, a, kind)
        job = dataclasses.replace(job, created_at=later, expires_at=later + 60_000)
        await store.schedule([ScheduledJob(job, tuple(targets))])
    await erasure.erase(store, reg)

    def every_row(tx) -> str:  # type: ignore[no-untyped-def]
        if store.engine.name == "sqlite":
            tables = [r[0] for r in tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")]
        else:
            tables = [
                r[0]
                for r in tx.all(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema()"
                )
            ]
        return repr([tx.all(f"SELECT * FROM {t}") for t in tables])

    rows = await store.engine.read(every_row)
    for trace in (reg, "al-erased", "acc-erased"):
        assert trace not in rows, trace
    assert other in rows  # the other device's rows stay

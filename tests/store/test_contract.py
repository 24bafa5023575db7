"""The storage contract: SQLite and PostgreSQL behave the same, checked on real databases."""

from __future__ import annotations

import asyncio

import pytest

from tidings import ids
from tidings.clock import ManualClock
from tidings.core.models import DeviceInfo, Message, Notification, TargetKind, TopicOp
from tidings.errors import StoreRefused
from tidings.store.schema import LATEST
from tidings.store.store import Store


def _msg(store: Store, app_id: str, kind: TargetKind, ttl: int = 60_000, **kw) -> Message:  # type: ignore[no-untyped-def]
    now = store.clock.now_ms()
    return Message(
        msg_id=ids.message_id(),
        app_id=app_id,
        kind=kind,
        notification=Notification(title="t", description="d", payload="p"),
        created_at=now,
        expires_at=now + ttl,
        **kw,
    )


async def _app_and_devices(store: Store, n: int = 3) -> tuple[str, list[str]]:
    new = await store.create_app("Demo", "com.example.demo")
    regs = [await store.register_device(new.app.app_id, f"uaid{i}", DeviceInfo()) for i in range(n)]
    return new.app.app_id, regs


def _moves(regs: list[str], cursors: dict[str, int]) -> dict[str, tuple[int, int]]:
    """ack_log's moves: each device's slot is its number in registration order."""
    return {r: (regs.index(r), c) for r, c in cursors.items()}


async def test_text_with_nul_is_refused_where_it_cannot_be_kept(store: Store) -> None:
    """The surfaces refuse U+0000; the store's own guard: PostgreSQL cannot hold it in text, and
    says so with StoreRefused (not a failure worth retrying); SQLite keeps it."""
    app_id, regs = await _app_and_devices(store, 1)
    if store.engine.name == "postgres":
        with pytest.raises(StoreRefused):
            await store.set_alias(app_id, regs[0], "al\x00ice")
    else:
        await store.set_alias(app_id, regs[0], "al\x00ice")


async def test_migrations_reach_latest(store: Store) -> None:
    assert await store.schema_version() == LATEST


async def test_secrets_are_hashed_and_checked(store: Store) -> None:
    new = await store.create_app("Demo", "com.example.demo", "v1")
    assert (await store.app_by_secret(new.app_secret)).app_id == new.app.app_id  # type: ignore[union-attr]
    assert await store.app_by_secret(new.app_secret + "x") is None
    assert new.app.secret_hash != new.app_secret
    assert new.app_secret not in repr(await store.app_by_id(new.app.app_id))


async def test_regid_is_stable_per_device_and_app(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 2)
    again = await store.register_device(app_id, "uaid0", DeviceInfo(sdk_version="2"))
    assert again == regs[0]
    assert regs[0] != regs[1]
    other = await store.create_app("Other", "com.example.other")
    assert await store.register_device(other.app.app_id, "uaid0", DeviceInfo()) != regs[0]


async def test_unicast_inbox_seq_ack(store: Store) -> None:
    app_id, regs = await _app_and_devices(store)
    m1 = _msg(store, app_id, TargetKind.REGID)
    res = await store.send_unicast(m1, [regs[0], "nope", regs[1]])
    assert set(res.reg_ids) == {regs[0], regs[1]}
    assert res.bad_targets == ("nope",)
    m2 = _msg(store, app_id, TargetKind.REGID)
    await store.send_unicast(m2, [regs[0]])
    got = await store.pending(regs[0])
    assert [(d.seq, d.msg_id) for d in got] == [(1, m1.msg_id), (2, m2.msg_id)]
    assert '"title":"t"' in (got[0].body or "")
    assert [d.seq for d in await store.pending(regs[0], after_seq=1)] == [2]
    await store.ack([(regs[0], 1, m1.msg_id), (regs[0], 2, "wrong-id")])
    assert [d.seq for d in await store.pending(regs[0])] == [2]


async def test_another_apps_regid_is_a_bad_target_and_keeps_its_sequence(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 2)
    other = await store.create_app("Other", "com.example.other")
    foreign = await store.register_device(other.app.app_id, "uaid9", DeviceInfo())
    res = await store.send_unicast(_msg(store, app_id, TargetKind.REGID), [*regs, foreign])
    assert set(res.reg_ids) == set(regs) and res.bad_targets == (foreign,)
    assert (await store.get_device(foreign)).last_seq == 0  # type: ignore[union-attr]
    assert await store.pending(foreign) == []
    m = _msg(store, other.app.app_id, TargetKind.REGID)
    assert (await store.send_unicast(m, [foreign, *regs])).reg_ids == (foreign,)
    assert [d.seq for d in await store.pending(foreign)] == [1]


async def test_no_valid_target_stores_nothing(store: Store) -> None:
    app_id, _ = await _app_and_devices(store, 1)
    res = await store.send_unicast(_msg(store, app_id, TargetKind.REGID), ["x", "y"])
    assert res.reg_ids == ()
    assert (await store.counts())["messages"] == 0


async def test_alias_and_account_resolution(store: Store) -> None:
    app_id, regs = await _app_and_devices(store)
    await store.set_alias(app_id, regs[0], "alice")
    await store.set_alias(app_id, regs[1], "alice")  # moves to the newer device
    await store.set_account(regs[1], "acct")
    await store.set_account(regs[2], "acct")
    assert await store.resolve_targets(app_id, TargetKind.ALIAS, ["alice", "bob"]) == (
        [regs[1]],
        ["bob"],
    )
    regs_acct, bad = await store.resolve_targets(app_id, TargetKind.ACCOUNT, ["acct"])
    assert sorted(regs_acct) == sorted([regs[1], regs[2]]) and bad == []
    assert not await store.unset_alias(app_id, regs[0], "alice")
    assert await store.unset_alias(app_id, regs[1], "alice")


async def test_broadcast_is_one_row_and_catch_up_filters_topics(store: Store) -> None:
    app_id, regs = await _app_and_devices(store)
    await store.subscribe(app_id, [regs[0], regs[1]], "news")
    await store.subscribe(app_id, [regs[1]], "sport")
    before = await store.counts()
    m_all = _msg(store, app_id, TargetKind.ALL)
    m_news = _msg(store, app_id, TargetKind.TOPIC, topics=("news",))
    m_inter = _msg(
        store,
        app_id,
        TargetKind.MULTI_TOPIC,
        topics=("news", "sport"),
        topic_op=TopicOp.INTERSECTION,
    )
    m_except = _msg(
        store, app_id, TargetKind.MULTI_TOPIC, topics=("news", "sport"), topic_op=TopicOp.EXCEPT
    )
    for m in (m_all, m_news, m_inter, m_except):
        await store.append_log(m)
    after = await store.counts()
    assert after["messages"] - before["messages"] == 4
    assert after["inbox"] == before["inbox"]
    new = await store.catch_up(app_id, regs)
    assert sorted(new) == sorted(regs)
    assert [d.msg_id for d in new[regs[2]]] == [m_all.msg_id]
    assert [d.seq for d in new[regs[0]]] == [1, 2, 3]
    assert '"title":"t"' in (new[regs[0]][0].body or "")

    async def ids_of(r: str) -> list[str]:
        return [d.msg_id or "" for d in await store.pending(r)]

    assert await ids_of(regs[0]) == [m_all.msg_id, m_news.msg_id, m_except.msg_id]
    assert await ids_of(regs[1]) == [m_all.msg_id, m_news.msg_id, m_inter.msg_id]
    assert await ids_of(regs[2]) == [m_all.msg_id]
    assert await store.catch_up(app_id, regs) == {}  # cursors moved: idempotent


async def test_new_device_does_not_get_old_broadcasts(store: Store) -> None:
    app_id, _ = await _app_and_devices(store, 1)
    await store.append_log(_msg(store, app_id, TargetKind.ALL))
    late = await store.register_device(app_id, "late", DeviceInfo())
    assert await store.catch_up(app_id, [late]) == {}


async def test_expired_messages_are_never_pending(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, ManualClock)
    app_id, regs = await _app_and_devices(store, 1)
    await store.send_unicast(_msg(store, app_id, TargetKind.REGID, ttl=1000), regs)
    await store.append_log(_msg(store, app_id, TargetKind.ALL, ttl=1000))
    clock.advance(1000)
    assert await store.pending(regs[0]) == []
    assert await store.catch_up(app_id, regs) == {}
    assert await store.sweep_expired() == (1, 2)


async def test_backlog_cap_drops_oldest_and_queues_one_marker(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 1)  # cap is 5 in the fixture
    sent = []
    for _ in range(8):
        m = _msg(store, app_id, TargetKind.REGID)
        sent.append(m.msg_id)
        await store.send_unicast(m, regs)
    got = await store.pending(regs[0])
    assert [d.msg_id for d in got if not d.is_resync] == sent[3:]
    assert sum(d.is_resync for d in got) == 1
    assert (await store.get_device(regs[0])).dropped == 3  # type: ignore[union-attr]
    marker = next(d for d in got if d.is_resync)
    assert marker.seq > 3  # after every dropped one: new even to a device that had them
    await store.ack([(regs[0], marker.seq, "")])
    assert not any(d.is_resync for d in await store.pending(regs[0]))


async def test_unregister_removes_everything(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 1)
    await store.set_alias(app_id, regs[0], "a")
    await store.subscribe(app_id, regs, "t")
    await store.send_unicast(_msg(store, app_id, TargetKind.REGID), regs)
    assert await store.unregister_device(regs[0])
    c = await store.counts()
    assert (c["devices"], c["aliases"], c["topic_subs"], c["inbox"]) == (0, 0, 0, 0)


async def test_concurrent_sends_get_distinct_sequences(store: Store) -> None:
    store.backlog_cap = 1000
    app_id, regs = await _app_and_devices(store, 2)
    msgs = [_msg(store, app_id, TargetKind.REGID) for _ in range(40)]
    await asyncio.gather(*(store.send_unicast(m, regs) for m in msgs))
    for r in regs:
        seqs = [d.seq for d in await store.pending(r, limit=100)]
        assert sorted(seqs) == list(range(1, 41))


async def test_topic_members_for_unstored_broadcast(store: Store) -> None:
    app_id, regs = await _app_and_devices(store)
    await store.subscribe(app_id, regs[:2], "a")
    assert sorted(
        await store.topic_members(app_id, regs, TargetKind.TOPIC, ["a"], TopicOp.UNION)
    ) == sorted(regs[:2])
    await store.unsubscribe(app_id, [regs[0]], "a")
    assert await store.topic_members(app_id, regs, TargetKind.TOPIC, ["a"], TopicOp.UNION) == [
        regs[1]
    ]


async def test_catch_up_respects_the_backlog_cap(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 1)  # cap is 5 in the fixture
    sent = []
    for _ in range(8):
        m = _msg(store, app_id, TargetKind.ALL)
        sent.append(m.msg_id)
        await store.append_log(m)
    assert await store.catch_up(app_id, regs) == {regs[0]: []}  # read it from the inbox
    got = await store.pending(regs[0])
    assert [d.msg_id for d in got if not d.is_resync] == sent[3:]
    assert sum(d.is_resync for d in got) == 1


async def test_many_target_sends_keep_sequences_and_the_cap(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 6)  # cap is 5 in the fixture
    msgs = [_msg(store, app_id, TargetKind.REGID) for _ in range(8)]
    await asyncio.gather(*(store.send_unicast(m, regs) for m in msgs))  # concurrent, 6 targets
    for r in regs:
        got = await store.pending(r, limit=100)
        assert sum(d.is_resync for d in got) == 1
        assert len([d for d in got if not d.is_resync]) == 5
        seqs = [d.seq for d in got]
        assert len(set(seqs)) == len(seqs)
        assert (await store.get_device(r)).dropped == 3  # type: ignore[union-attr]


async def test_log_fanout_writes_nothing_per_device_and_ack_log_moves_the_cursor(
    store: Store,
) -> None:
    app_id, regs = await _app_and_devices(store, 2)
    await store.subscribe(app_id, [regs[0]], "news")
    m_all = _msg(store, app_id, TargetKind.ALL)
    m_news = _msg(store, app_id, TargetKind.TOPIC, topics=("news",))
    await store.append_log(m_all)
    await store.append_log(m_news)
    before = await store.counts()
    head, new = await store.log_fanout(app_id, {regs[0]: 0, regs[1]: 0})
    assert head == 2
    assert [(e.offset, e.msg_id) for e in new[regs[0]]] == [(1, m_all.msg_id), (2, m_news.msg_id)]
    assert [e.msg_id for e in new[regs[1]]] == [m_all.msg_id]
    assert new[regs[0]][0] is new[regs[1]][0]  # one entry object per message, shared
    assert await store.counts() == before  # no inbox row
    assert (await store.get_device(regs[0])).log_cursor == 0  # type: ignore[union-attr]
    head, again = await store.log_fanout(app_id, {regs[0]: 1, regs[1]: 2})  # from where it stands
    assert [e.msg_id for e in again[regs[0]]] == [m_news.msg_id]
    assert regs[1] not in again
    # device 0 acked offset 2 only: its cursor stays before offset 1, nothing counts yet
    await store.ack_log(
        app_id, _moves(regs, {regs[0]: 0, regs[1]: 2}), [(regs[1], 1, m_all.msg_id)]
    )
    assert (await store.get_device(regs[0])).log_cursor == 0  # type: ignore[union-attr]
    assert (await store.get_device(regs[1])).log_cursor == 2  # type: ignore[union-attr]
    await store.ack_log(
        app_id,
        _moves(regs, {regs[0]: 2}),
        [(regs[0], 1, m_all.msg_id), (regs[0], 2, m_news.msg_id)],
    )
    await store.ack_log(
        app_id, _moves(regs, {regs[0]: 2}), [(regs[0], 2, m_news.msg_id)]
    )  # repeated: counts nothing
    assert (await store.get_device(regs[0])).log_cursor == 2  # type: ignore[union-attr]
    stats_all = await store.message_stats(app_id, m_all.msg_id)
    stats_news = await store.message_stats(app_id, m_news.msg_id)
    assert stats_all is not None and stats_news is not None
    assert (stats_all.delivered, stats_news.delivered) == (2, 1)
    assert (stats_all.resolved, stats_news.resolved) == (2, 2)  # news counted by both fan-outs
    assert await store.catch_up(app_id, regs) == {}  # both cursors at the head


async def test_ack_log_does_not_count_what_a_catch_up_copied_meanwhile(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 1)
    m = _msg(store, app_id, TargetKind.ALL)
    await store.append_log(m)
    _, sent = await store.log_fanout(app_id, {regs[0]: 0})
    assert [e.msg_id for e in sent[regs[0]]] == [m.msg_id]
    copied = await store.catch_up(app_id, regs)  # a reconnect copied it into the inbox first
    assert [d.msg_id for d in copied[regs[0]]] == [m.msg_id]
    await store.ack_log(
        app_id, _moves(regs, {regs[0]: 1}), [(regs[0], 1, m.msg_id)]
    )  # the late ack from memory
    stats = await store.message_stats(app_id, m.msg_id)
    assert stats is not None and stats.delivered == 0  # counted when the inbox copy is acked
    await store.ack([(regs[0], 1, m.msg_id)])
    stats = await store.message_stats(app_id, m.msg_id)
    assert stats is not None and stats.delivered == 1

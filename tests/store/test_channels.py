"""Channels and per-category delivered counts, on both engines."""

from __future__ import annotations

import dataclasses

from tests.store.test_contract import _app_and_devices, _msg
from tidings.core.models import Channel, Notification, TargetKind
from tidings.store import ops_stats
from tidings.store.store import Store


async def test_channels_add_list_discard(store: Store) -> None:
    app_id, _ = await _app_and_devices(store, 1)
    await store.add_channel(app_id, Channel("news", "News"))
    await store.add_channel(app_id, Channel("im", "Chat", "messages", "", 1, "private"))
    assert [c.channel_id for c in await store.list_channels(app_id)] == ["im", "news"]
    assert await store.list_channels("other-app") == []
    assert await store.discard_channel(app_id, "news")
    assert not await store.discard_channel(app_id, "news")
    assert await store.get_channel(app_id, "news") is None
    await store.add_channel(app_id, Channel("news", "News again"))  # restores it
    got = await store.get_channel(app_id, "news")
    assert got is not None and got.name == "News again" and got.category == "public"


async def test_delivered_counts_per_category(store: Store) -> None:
    app_id, regs = await _app_and_devices(store, 2)
    await store.add_channel(app_id, Channel("im", "Chat", category="private"))
    plain = _msg(store, app_id, TargetKind.REGID)
    note = Notification(title="t", description="d", extra={"channel_id": "im"})
    private = dataclasses.replace(_msg(store, app_id, TargetKind.REGID), notification=note)
    await store.send_unicast(plain, regs)
    await store.send_unicast(private, regs[:1])
    await store.ack([(regs[0], 1, plain.msg_id), (regs[1], 1, plain.msg_id)])
    await store.ack([(regs[0], 2, private.msg_id)])
    day = ops_stats.day_of(store.clock.now_ms())
    got = (await store.daily_stats(app_id, day, day))[day]
    assert got["received"] == 3
    # no quota is active: nothing is counted per device
    assert await store.delivered_today(regs[0], "default") == 0

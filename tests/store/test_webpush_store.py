"""The Web Push operations on both engines (real SQLite file, real PostgreSQL database)."""

from __future__ import annotations

from tidings.core.models import WebPushMessage
from tidings.store.store import Store


def message(version: str, expires_in_ms: int, store: Store) -> WebPushMessage:
    now = store.clock.now_ms()
    return WebPushMessage(version, "c1", "ZGF0YQ", {"encoding": "aes128gcm"}, now + expires_in_ms)


async def test_subscriptions_messages_topics_caps_acks_and_expiry(store: Store) -> None:
    token = await store.webpush_subscribe("u1", "c1", "KEY", "tok1", most=2)
    assert token == "tok1"
    assert await store.webpush_subscribe("u1", "c1", "KEY", "tok-other", most=2) == "tok1"
    assert await store.webpush_subscribe("u1", "c1", "OTHER", "tok2", most=2) is None
    assert await store.webpush_subscribe("u1", "c2", None, "tok2", most=2) == "tok2"
    assert await store.webpush_subscribe("u1", "c3", None, "tok3", most=2) is None  # 2 at most
    assert await store.webpush_channel("tok1") == ("u1", "c1", "KEY")
    assert await store.webpush_has_channels("u1") and not await store.webpush_has_channels("u2")
    assert await store.uaid_known("u1")

    assert await store.webpush_add("tok1", "u1", message("v1", 60_000, store), "t", 3) == "kept"
    assert await store.webpush_add("tok1", "u1", message("v2", 60_000, store), "t", 3) == "kept"
    assert await store.webpush_add("tok1", "u1", message("v3", 1_000, store), None, 3) == "kept"
    assert await store.webpush_add("tok1", "u1", message("v4", 60_000, store), None, 3) == "kept"
    assert await store.webpush_add("tok1", "u1", message("v5", 60_000, store), None, 3) == "full"
    pending = await store.webpush_pending("u1")
    assert sorted(m.version for m in pending) == ["v2", "v3", "v4"]  # v2 replaced v1 (topic)
    assert pending[0].headers == {"encoding": "aes128gcm"} and pending[0].data == "ZGF0YQ"

    await store.webpush_ack("u2", ["v2"])  # another browser's ack takes nothing
    await store.webpush_ack("u1", ["v2"])
    assert await store.webpush_delete("v4") and not await store.webpush_delete("v4")
    assert [m.version for m in await store.webpush_pending("u1")] == ["v3"]
    store.clock.advance(2_000)  # type: ignore[attr-defined]
    assert await store.webpush_pending("u1") == []  # expired: never delivered
    await store.sweep_expired()
    assert await store.webpush_add("tok1", "u1", message("v6", 60_000, store), None, 3) == "kept"
    assert await store.webpush_unsubscribe("u1", "c1")
    assert not await store.webpush_unsubscribe("u1", "c1")
    assert await store.webpush_channel("tok1") is None
    assert await store.webpush_pending("u1") == []
    assert await store.webpush_add("tok1", "u1", message("v7", 60_000, store), None, 3) == "gone"

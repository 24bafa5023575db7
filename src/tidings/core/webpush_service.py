"""Web Push for browsers: subscriptions made over the device gateway, messages posted to their
push endpoints (RFC 8030), kept in the store until the browser acks them or they expire.

The rules for a push request and VAPID are in :mod:`tidings.core.webpush` (no I/O); this
service adds the store and the bus. A gateway holding the browser's connection hears of each
message on the bus (:class:`WebPushed`) and sends it; a browser that connects later gets its
pending messages after its hello.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from tidings import ids
from tidings.bus.base import Bus
from tidings.bus.events import WebPushed
from tidings.core.models import WebPushMessage
from tidings.core.webpush import (
    ERRNO_GONE,
    ERRNO_TOO_MANY,
    b64url,
    check_vapid,
    decode_b64url,
    read_push,
)
from tidings.errors import PushRefused
from tidings.settings import Settings
from tidings.store.store import Store

MAX_CHANNELS = 256  # Web Push subscriptions of one browser
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _well_formed(name: str) -> bool:
    """An endpoint token or message version as Tidings makes them (base64url, at most 64)."""
    return 0 < len(name) <= 64 and _TOKEN_CHARS.issuperset(name)


def _gone() -> PushRefused:
    return PushRefused(410, ERRNO_GONE, "no such subscription: it was removed or never made")


class WebPushService:
    def __init__(self, store: Store, bus: Bus, settings: Settings) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.base_url = settings.public_url.rstrip("/")  # set by the node once it listens

    @property
    def origin(self) -> str:
        """What a VAPID token's ``aud`` must be: the push endpoints' origin."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    def endpoint(self, token: str) -> str:
        return f"{self.base_url}/wpush/{token}"

    async def subscribe(self, uaid: str, channel_id: str, key: bytes | None) -> str | None:
        """The push endpoint of the browser's channel; None when the channel exists with
        another application server key or the browser has too many."""
        token = await self.store.webpush_subscribe(
            uaid, channel_id, b64url(key) if key else None, ids.push_token(), MAX_CHANNELS
        )
        return None if token is None else self.endpoint(token)

    async def unsubscribe(self, uaid: str, channel_id: str) -> bool:
        return await self.store.webpush_unsubscribe(uaid, channel_id)

    async def has_channels(self, uaid: str) -> bool:
        return await self.store.webpush_has_channels(uaid)

    async def pending(self, uaid: str, limit: int) -> list[WebPushMessage]:
        """The browser's oldest ``limit`` waiting messages."""
        return await self.store.webpush_pending(uaid, limit)

    async def ack(self, uaid: str, versions: list[str]) -> None:
        await self.store.webpush_ack(uaid, versions)

    async def push(self, token: str, headers: Mapping[str, str], body: bytes) -> tuple[str, int]:
        """Take a message posted to a push endpoint: its version and the TTL applied.
        :class:`PushRefused` when the endpoint is gone or the request is not acceptable."""
        found = None
        if _well_formed(token):
            found = await self.store.webpush_channel(token)
        if found is None:
            raise _gone()
        uaid, channel_id, key = found
        now_ms = self.store.clock.now_ms()
        check_vapid(
            headers.get("authorization", ""),
            headers.get("crypto-key", ""),
            decode_b64url(key) if key else None,
            self.origin,
            now_ms // 1000,
        )
        push = read_push(headers, body, self.settings.webpush_ttl_max_s)
        message = WebPushMessage(
            ids.push_version(),
            channel_id,
            push.data,
            push.headers,
            now_ms + push.ttl_s * 1000,
        )
        if push.ttl_s > 0:  # TTL 0: now or never, never stored
            most = self.settings.webpush_pending_max
            kept = await self.store.webpush_add(token, uaid, message, push.topic, most)
            if kept == "gone":
                raise _gone()
            if kept == "full":
                raise PushRefused(
                    429, ERRNO_TOO_MANY, f"{most} messages wait for this browser already"
                )
        await self.bus.publish(WebPushed(uaid, message))
        return message.version, push.ttl_s

    async def take_back(self, version: str) -> bool:
        """The application server deletes its message before delivery (RFC 8030 section 7)."""
        if not _well_formed(version):
            return False
        return await self.store.webpush_delete(version)

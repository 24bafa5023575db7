"""Notification channels (``/v1/channel/{add,list,discard}``) and the channel check of sends.

A channel gives its messages a category: ``public`` (公信, the default for a new channel) or
``private`` (私信); messages without ``extra.channel_id`` are in the ``default`` category. The
operator's limits (``tidings limits``) may give each category a daily quota per device; the
store applies it when it resolves a send's devices (``UnicastResult.over_quota``).
"""

from __future__ import annotations

from typing import Any

from tidings.api import codes
from tidings.api.call import Call, Handler, envelope, required
from tidings.api.message_form import Draft
from tidings.api.params import decimal
from tidings.core.models import App, Channel, UnicastResult
from tidings.errors import ApiError
from tidings.store.store import Store

MAX_CHANNEL_ID = 200
MAX_CHANNEL_NAME = 40
MAX_CHANNEL_DESCRIPTION = 300


def _length(value: str, name: str, limit: int) -> str:
    if len(value) > limit:
        raise ApiError(codes.ILLEGAL_PARAM, f"{name} is longer than {limit}")
    return value


async def channel_add(call: Call) -> dict[str, Any]:
    p = call.params
    channel_id = _length(required(p, "channel_id"), "channel_id", MAX_CHANNEL_ID)
    name = _length(required(p, "channel_name"), "channel_name", MAX_CHANNEL_NAME)
    description = _length(
        p.get("channel_description") or "", "channel_description", MAX_CHANNEL_DESCRIPTION
    )
    sound_url = _length(p.get("sound_url") or "", "sound_url", 512)
    notify_type = decimal(p.get("notify_type") or "-1", "notify_type", -1, 7)
    category = (p.get("category") or "public").strip().lower()
    if category not in ("public", "private"):
        raise ApiError(codes.ILLEGAL_PARAM, "category must be public or private")
    channel = Channel(channel_id, name, description, sound_url, notify_type, category)
    await call.store.add_channel(call.app.app_id, channel)
    return envelope(0, {"channel_id": channel_id})


async def channel_list(call: Call) -> dict[str, Any]:
    channels = await call.store.list_channels(call.app.app_id)
    return envelope(
        0,
        {
            "list": [
                {
                    "channel_id": c.channel_id,
                    "channel_name": c.name,
                    "channel_description": c.description,
                    "sound_url": c.sound_url,
                    "notify_type": c.notify_type,
                    "category": c.category,
                }
                for c in channels
            ]
        },
    )


async def channel_discard(call: Call) -> dict[str, Any]:
    channel_id = required(call.params, "channel_id")
    if not await call.store.discard_channel(call.app.app_id, channel_id):
        raise ApiError(codes.CHANNEL_MISMATCH, "no such channel for this app")
    return envelope(0, {"channel_id": channel_id})


async def check_channel(store: Store, app: App, draft: Draft) -> None:
    """Refuse a send whose ``extra.channel_id`` is not a channel of the app (27001)."""
    channel_id = draft.notification.extra.get("channel_id")
    if channel_id and await store.get_channel(app.app_id, channel_id) is None:
        raise ApiError(codes.CHANNEL_MISMATCH, f"extra.channel_id {channel_id!r} is unknown")


def quota_error(result: UnicastResult, data: dict[str, Any] | None = None) -> ApiError:
    """200001 for a send whose every known target was at its daily quota."""
    acked = min(n for _, n in result.over_quota)
    return ApiError(
        codes.QUOTA_EXCEEDED,
        f"exceed quota, quota: {result.quota}, have acked: {acked}",
        data or None,
    )


ROUTES: dict[str, Handler] = {
    "/v1/channel/add": channel_add,
    "/v1/channel/list": channel_list,
    "/v1/channel/discard": channel_discard,
}

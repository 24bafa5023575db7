"""Store operations for notification channels, which give messages their category.

A channel (``extra.channel_id``) puts a message in a category: ``public`` (公信) or ``private``
(私信); a message without a channel is in the ``default`` category. Deliveries are counted per
app, UTC day and category (``daily_stats.received_<category>``) and, while a quota is active, per
device (``ops_limits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.core.models import Channel

if TYPE_CHECKING:
    from tidings.store.ops import Tx

CATEGORIES = ("default", "public", "private")
_COLS = "channel_id, name, description, sound_url, notify_type, category"


def add_channel(tx: Tx, app_id: str, channel: Channel, now: int) -> None:
    """Add a channel, or update (and restore, if discarded) the one with that id."""
    tx.execute(
        f"INSERT INTO channels (app_id, {_COLS}, discarded, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (app_id, channel_id) DO UPDATE SET"
        " name = excluded.name, description = excluded.description,"
        " sound_url = excluded.sound_url, notify_type = excluded.notify_type,"
        " category = excluded.category, discarded = 0",
        (
            app_id,
            channel.channel_id,
            channel.name,
            channel.description,
            channel.sound_url,
            channel.notify_type,
            channel.category,
            now,
        ),
    )


def list_channels(tx: Tx, app_id: str) -> list[Channel]:
    rows = tx.all(
        f"SELECT {_COLS} FROM channels WHERE app_id = ? AND discarded = 0 ORDER BY channel_id",
        (app_id,),
    )
    return [Channel(*r) for r in rows]


def get_channel(tx: Tx, app_id: str, channel_id: str) -> Channel | None:
    row = tx.one(
        f"SELECT {_COLS} FROM channels WHERE app_id = ? AND channel_id = ? AND discarded = 0",
        (app_id, channel_id),
    )
    return Channel(*row) if row else None


def discard_channel(tx: Tx, app_id: str, channel_id: str) -> bool:
    tx.execute(
        "UPDATE channels SET discarded = 1 WHERE app_id = ? AND channel_id = ? AND discarded = 0",
        (app_id, channel_id),
    )
    return tx.rowcount() > 0


def category_of(tx: Tx, app_id: str, channel_id: str | None) -> str:
    if not channel_id:
        return "default"
    channel = get_channel(tx, app_id, channel_id)
    return channel.category if channel else "default"

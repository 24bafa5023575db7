"""Store operations for notification channels and the daily quotas of their categories.

A channel (``extra.channel_id``) puts a message in a category: ``public`` (公信) or ``private``
(私信); a message without a channel is in the ``default`` category. Quotas count delivered
messages per app, UTC day and category (``daily_stats.received_<category>``).
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


def quota_usage(tx: Tx, app_id: str, day: str, category: str) -> tuple[int, int]:
    """(messages of the category delivered today, registered devices of the app)."""
    if category not in CATEGORIES:
        raise ValueError(category)
    row = tx.one(
        f"SELECT received_{category} FROM daily_stats WHERE app_id = ? AND day = ?",
        (app_id, day),
    )
    devices = tx.one("SELECT count(*) FROM devices WHERE app_id = ?", (app_id,))
    return (int(row[0]) if row else 0), (int(devices[0]) if devices else 0)

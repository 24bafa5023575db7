"""Store operations for Web Push: browser subscriptions and the messages posted to them.

A subscription (``webpush_channels``) is one browser (``uaid``) and one of its ``channelID``s,
reached by an unguessable endpoint ``token``. A message (``webpush_messages``) waits until the
browser acks its ``version`` or it expires; one with a ``topic`` replaces the subscription's
pending message with the same topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from tidings.core.models import WebPushMessage

if TYPE_CHECKING:
    from tidings.store.ops import Tx

_MSG_COLS = "version, channel_id, data, headers, expires_at"


def subscribe(
    tx: Tx, uaid: str, channel_id: str, key: str | None, token: str, now: int, most: int
) -> str | None:
    """The endpoint token of the browser's channel: the one it has, else ``token`` (new).
    None when the channel exists with another application server key, or the browser has
    ``most`` channels already."""
    row = tx.one(
        "SELECT token, app_server_key FROM webpush_channels WHERE uaid = ? AND channel_id = ?",
        (uaid, channel_id),
    )
    if row is not None:
        return str(row[0]) if row[1] == key else None
    count = tx.one("SELECT count(*) FROM webpush_channels WHERE uaid = ?", (uaid,))
    if count is not None and int(count[0]) >= most:
        return None
    tx.execute(
        "INSERT INTO webpush_channels (token, uaid, channel_id, app_server_key, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (token, uaid, channel_id, key, now),
    )
    return token


def unsubscribe(tx: Tx, uaid: str, channel_id: str) -> bool:
    """Delete the channel and its pending messages."""
    tx.execute("DELETE FROM webpush_messages WHERE uaid = ? AND channel_id = ?", (uaid, channel_id))
    tx.execute("DELETE FROM webpush_channels WHERE uaid = ? AND channel_id = ?", (uaid, channel_id))
    return tx.rowcount() > 0


def channel(tx: Tx, token: str) -> tuple[str, str, str | None] | None:
    """(uaid, channelID, application server key) of an endpoint token."""
    row = tx.one(
        "SELECT uaid, channel_id, app_server_key FROM webpush_channels WHERE token = ?", (token,)
    )
    return (str(row[0]), str(row[1]), row[2]) if row else None


def has_channels(tx: Tx, uaid: str) -> bool:
    return tx.one("SELECT 1 FROM webpush_channels WHERE uaid = ? LIMIT 1", (uaid,)) is not None


def add_message(
    tx: Tx, token: str, uaid: str, msg: WebPushMessage, topic: str | None, now: int, most: int
) -> str:
    """Keep a message for the browser (replacing a pending one with the same topic): "kept";
    "full" when the subscription has ``most`` pending already, "gone" when it was just removed."""
    if tx.one(f"SELECT 1 FROM webpush_channels WHERE token = ?{tx.lock_rows}", (token,)) is None:
        return "gone"
    if topic is not None:
        tx.execute("DELETE FROM webpush_messages WHERE token = ? AND topic = ?", (token, topic))
    count = tx.one("SELECT count(*) FROM webpush_messages WHERE token = ?", (token,))
    if count is not None and int(count[0]) >= most:
        return "full"
    tx.execute(
        "INSERT INTO webpush_messages (version, token, uaid, channel_id, topic, data, headers,"
        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            msg.version,
            token,
            uaid,
            msg.channel_id,
            topic,
            msg.data,
            orjson.dumps(msg.headers).decode(),
            now,
            msg.expires_at,
        ),
    )
    return "kept"


def pending(tx: Tx, uaid: str, now: int, limit: int) -> list[WebPushMessage]:
    """The browser's unexpired messages, oldest first."""
    rows = tx.all(
        f"SELECT {_MSG_COLS} FROM webpush_messages WHERE uaid = ? AND expires_at > ?"
        " ORDER BY created_at, version LIMIT ?",
        (uaid, now, limit),
    )
    return [WebPushMessage(str(v), str(c), d, orjson.loads(h), int(e)) for v, c, d, h, e in rows]


def ack(tx: Tx, uaid: str, versions: list[str]) -> None:
    """Forget the messages the browser acked (only its own)."""
    tx.many(
        "DELETE FROM webpush_messages WHERE version = ? AND uaid = ?",
        [(version, uaid) for version in versions],
    )


def delete_message(tx: Tx, version: str) -> bool:
    """The application server took its message back before it was delivered."""
    tx.execute("DELETE FROM webpush_messages WHERE version = ?", (version,))
    return tx.rowcount() > 0


def sweep_expired(tx: Tx, now: int) -> int:
    tx.execute("DELETE FROM webpush_messages WHERE expires_at <= ?", (now,))
    return tx.rowcount()

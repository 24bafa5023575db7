"""Typed bus events. The store is the system of record; an event lost on the bus only delays a
delivery until the device reconnects or the gateway rescans."""

from __future__ import annotations

import dataclasses

from tidings.core.models import Delivery, TargetKind, TopicOp, WebPushMessage


@dataclasses.dataclass(frozen=True)
class InboxChanged:
    """New inbox rows were committed for these devices.

    ``deliveries`` may carry the new rows ready to send (reg_id -> entries), so a gateway holding
    the device sends them without reading the store; an empty list means "read the inbox".
    """

    reg_ids: tuple[str, ...]
    deliveries: dict[str, list[Delivery]] | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True)
class LogAppended:
    """A broadcast was committed to the app's log."""

    app_id: str


@dataclasses.dataclass(frozen=True)
class Ephemeral:
    """A TTL-0 / only_send_once message: deliver to whoever is connected now, store nothing.

    ``reg_ids`` names the targets of a unicast; for a broadcast it is empty and ``kind``,
    ``topics`` and ``topic_op`` select the devices.
    """

    app_id: str
    msg_id: str
    body: str
    kind: TargetKind
    reg_ids: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    topic_op: TopicOp = TopicOp.UNION


@dataclasses.dataclass(frozen=True)
class Revoked:
    """Take down the notification shown in slot ``notify_id`` on the connected devices targeted.

    ``reg_ids`` names the devices of a regId / alias / account revoke; for a topic revoke it is
    empty and ``kind``, ``topics`` and ``topic_op`` select them. Not stored: devices offline now
    do not get it.
    """

    app_id: str
    notify_id: int
    kind: TargetKind
    reg_ids: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    topic_op: TopicOp = TopicOp.UNION


@dataclasses.dataclass(frozen=True)
class WebPushed:
    """A Web Push message for the browser ``uaid`` (committed first, unless its TTL is 0)."""

    uaid: str
    message: WebPushMessage


BusEvent = InboxChanged | LogAppended | Ephemeral | Revoked | WebPushed

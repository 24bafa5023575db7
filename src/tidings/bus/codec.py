"""Bus events as bytes, for a bus that crosses processes (:mod:`tidings.bus.redis`).

An :class:`InboxChanged` crosses without its ready rows (``deliveries``): a node holding one of
the devices reads its inbox, which is what it does for any event it did not see whole. Every
message names the node that published it, so that node does not hear its own events twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from tidings.bus.events import BusEvent, Ephemeral, InboxChanged, LogAppended, Revoked, WebPushed
from tidings.core.models import TargetKind, TopicOp, WebPushMessage

RESCAN = "rescan"  # "events of mine may have been lost: look in the store"

_TYPES: dict[str, type[Any]] = {
    "inbox": InboxChanged,
    "log": LogAppended,
    "ephemeral": Ephemeral,
    "revoked": Revoked,
    "webpush": WebPushed,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def encode(node: str, event: BusEvent | None) -> bytes:
    """``None`` encodes the rescan notice."""
    if event is None:
        return orjson.dumps({"node": node, "type": RESCAN})
    if isinstance(event, InboxChanged):
        fields: dict[str, Any] = {"reg_ids": event.reg_ids}
    else:
        fields = dataclasses.asdict(event)
    return orjson.dumps({"node": node, "type": _NAMES[type(event)], "event": fields})


def decode(data: bytes) -> tuple[str, BusEvent | None]:
    """(publishing node, event or None for a rescan notice); ``ValueError`` when malformed."""
    try:
        obj = orjson.loads(data)
        node, kind = str(obj["node"]), obj["type"]
        if kind == RESCAN:
            return node, None
        fields = dict(obj["event"])
        cls = _TYPES[kind]
        for name in ("reg_ids", "topics"):
            if name in fields:
                fields[name] = tuple(fields[name])
        if "kind" in fields:
            fields["kind"] = TargetKind(fields["kind"])
        if "topic_op" in fields:
            fields["topic_op"] = TopicOp(fields["topic_op"])
        if cls is WebPushed:
            fields["message"] = WebPushMessage(**fields["message"])
        return node, cls(**fields)
    except (KeyError, TypeError, ValueError) as exc:  # orjson's decode error is a ValueError
        raise ValueError(f"not a bus message: {exc}") from exc

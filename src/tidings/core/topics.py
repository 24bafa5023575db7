"""Topic expressions: which devices a topic / multi-topic / all message reaches."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from tidings.core.models import TargetKind, TopicOp


def matches(
    kind: TargetKind, topics: Sequence[str], op: TopicOp, subscribed: Collection[str]
) -> bool:
    """Does a device subscribed to ``subscribed`` receive a message sent to this expression?

    UNION: any topic; INTERSECTION: every topic; EXCEPT: the first topic and none of the others.
    """
    if kind is TargetKind.ALL:
        return True
    if kind is TargetKind.TOPIC or op is TopicOp.UNION:
        return any(t in subscribed for t in topics)
    if op is TopicOp.INTERSECTION:
        return all(t in subscribed for t in topics)
    return topics[0] in subscribed and not any(t in subscribed for t in topics[1:])

"""Store operations for content review: rules, the held-message queue and the decision log.

Written like ``ops.py``: plain functions over a ``Tx``. Approving a held message stores it for
delivery (inbox rows or the broadcast log, through ``ops``) in the same transaction that marks it
approved and logs the decision, so an approval is never half done.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tidings.compliance.models import HeldMessage, ReviewRule, Verdict
from tidings.core.models import (
    Message,
    Notification,
    ScheduledJob,
    TargetKind,
    TopicOp,
    UnicastResult,
)
from tidings.store.batches import marks

if TYPE_CHECKING:
    from tidings.store.ops import Tx

HELD, APPROVED, REJECTED, EXPIRED = "held", "approved", "rejected", "expired"


def add_rule(tx: Tx, rule: ReviewRule) -> None:
    tx.execute(
        "INSERT INTO review_rules (rule_id, app_id, kind, pattern, action, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (rule.rule_id, rule.app_id, rule.kind, rule.pattern, rule.action.value, rule.created_at),
    )


def _rule(row: tuple[object, ...]) -> ReviewRule:
    return ReviewRule(
        str(row[0]),
        None if row[1] is None else str(row[1]),
        str(row[2]),
        str(row[3]),
        Verdict(str(row[4])),
        int(str(row[5])),
    )


_RULE_COLS = "rule_id, app_id, kind, pattern, action, created_at"


def list_rules(tx: Tx, app_id: str | None = None) -> list[ReviewRule]:
    """Every rule, or the rules that apply to one app (its own and the global ones)."""
    if app_id is None:
        rows = tx.all(f"SELECT {_RULE_COLS} FROM review_rules ORDER BY created_at, rule_id")
    else:
        rows = tx.all(
            f"SELECT {_RULE_COLS} FROM review_rules WHERE app_id IS NULL OR app_id = ?"
            " ORDER BY created_at, rule_id",
            (app_id,),
        )
    return [_rule(r) for r in rows]


def remove_rule(tx: Tx, rule_id: str) -> bool:
    tx.execute("DELETE FROM review_rules WHERE rule_id = ?", (rule_id,))
    return tx.rowcount() > 0


def audience(tx: Tx, app_id: str, kind: TargetKind, topics: Sequence[str]) -> int:
    """How many devices a broadcast can reach (for multi-topic: subscribers of any topic)."""
    if kind is TargetKind.ALL:
        row = tx.one("SELECT count(*) FROM devices WHERE app_id = ?", (app_id,))
    else:
        row = tx.one(
            f"SELECT count(DISTINCT reg_id) FROM topic_subs WHERE app_id = ?"
            f" AND topic IN ({marks(len(topics))})",
            (app_id, *topics),
        )
    return int(row[0]) if row else 0


def log_decision(
    tx: Tx, msg_id: str, app_id: str, decision: str, reason: str, actor: str, at: int
) -> None:
    tx.execute(
        "INSERT INTO review_log (decision_id, msg_id, app_id, decision, reason, actor, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (secrets.token_hex(12), msg_id, app_id, decision, reason, actor, at),
    )


def hold(tx: Tx, message: Message, targets: Sequence[str], reason: str, at: int) -> None:
    """Accept a message into the review queue; nothing is delivered until it is approved."""
    tx.execute(
        "INSERT INTO review_queue (msg_id, app_id, kind, body, targets, topics, topic_op,"
        " created_at, expires_at, status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message.msg_id,
            message.app_id,
            message.kind.value,
            message.notification.to_json(),
            json.dumps(list(targets)),
            json.dumps(list(message.topics)) if message.topics else "",
            message.topic_op.value,
            message.created_at,
            message.expires_at,
            HELD,
            reason,
        ),
    )
    log_decision(tx, message.msg_id, message.app_id, "hold", reason, "rules", at)


_HELD_COLS = (
    "msg_id, app_id, kind, body, targets, topics, topic_op, created_at, expires_at, status,"
    " reason, decided_at"
)


def _held(r: tuple[object, ...]) -> HeldMessage:
    return HeldMessage(
        str(r[0]),
        str(r[1]),
        str(r[2]),
        str(r[3]),
        tuple(json.loads(str(r[4]))),
        tuple(json.loads(str(r[5]))) if r[5] else (),
        str(r[6]),
        int(str(r[7])),
        int(str(r[8])),
        str(r[9]),
        str(r[10]),
        None if r[11] is None else int(str(r[11])),
    )


def held_messages(tx: Tx, app_id: str | None, limit: int) -> list[HeldMessage]:
    """Messages waiting for a reviewer, oldest first."""
    if app_id is None:
        rows = tx.all(
            f"SELECT {_HELD_COLS} FROM review_queue WHERE status = ? ORDER BY created_at LIMIT ?",
            (HELD, limit),
        )
    else:
        rows = tx.all(
            f"SELECT {_HELD_COLS} FROM review_queue WHERE status = ? AND app_id = ?"
            " ORDER BY created_at LIMIT ?",
            (HELD, app_id, limit),
        )
    return [_held(r) for r in rows]


def rejections(tx: Tx, app_id: str, limit: int) -> list[dict[str, object]]:
    """An app's rejected messages (by the rules at send time, or by a reviewer), newest first."""
    rows = tx.all(
        "SELECT msg_id, reason, actor, at FROM review_log WHERE app_id = ? AND decision = 'reject'"
        " ORDER BY at DESC LIMIT ?",
        (app_id, limit),
    )
    return [{"msg_id": r[0], "reason": r[1], "actor": r[2], "at": r[3]} for r in rows]


def held_message(tx: Tx, msg_id: str) -> HeldMessage | None:
    row = tx.one(f"SELECT {_HELD_COLS} FROM review_queue WHERE msg_id = ?", (msg_id,))
    return _held(row) if row else None


def decide(
    tx: Tx,
    msg_id: str,
    approve: bool,
    actor: str,
    reason: str,
    now: int,
    cap: int,
    quotas: Mapping[str, int] | None = None,
) -> tuple[HeldMessage, UnicastResult | None] | None:
    """Approve or reject a held message. Returns None when it is not (or no longer) held.

    An approved message past its expiry (TTL counts from acceptance) becomes ``expired`` and is
    not delivered; one whose ``time_to_send`` is still ahead becomes a scheduled job. An approved
    unicast sent now returns its store result; a broadcast or a job returns None there.
    """
    from tidings.store import ops, ops_jobs

    item = held_message(tx, msg_id)
    if item is None or item.status != HELD:
        return None
    status = REJECTED
    if approve:
        status = APPROVED if item.expires_at > now else EXPIRED
    tx.execute(
        "UPDATE review_queue SET status = ?, decided_at = ? WHERE msg_id = ? AND status = ?",
        (status, now, msg_id, HELD),
    )
    if tx.rowcount() != 1:  # someone else decided first
        return None
    log_decision(tx, msg_id, item.app_id, status, reason, actor, now)
    result: UnicastResult | None = None
    if status == APPROVED:
        message = Message(
            item.msg_id,
            item.app_id,
            TargetKind(item.kind),
            Notification.from_json(item.body),
            item.created_at,
            item.expires_at,
            item.topics,
            TopicOp(item.topic_op),
        )
        if message.created_at > now:  # a scheduled send approved before its time
            ops_jobs.schedule(tx, [ScheduledJob(message, item.targets)], now)
        elif message.kind.is_broadcast:
            ops.append_log(tx, message)
        else:
            result = ops.send_unicast(tx, message, item.targets, cap, quotas=quotas)
    # the body is kept for the audit trail; the targets are no longer needed
    tx.execute("UPDATE review_queue SET targets = '[]' WHERE msg_id = ?", (msg_id,))
    done = held_message(tx, msg_id)
    assert done is not None
    return done, result


def decisions(tx: Tx, msg_id: str) -> list[dict[str, object]]:
    rows = tx.all(
        "SELECT decision_id, msg_id, app_id, decision, reason, actor, at FROM review_log"
        " WHERE msg_id = ? ORDER BY at, decision_id",
        (msg_id,),
    )
    keys = ("decision_id", "msg_id", "app_id", "decision", "reason", "actor", "at")
    return [dict(zip(keys, r, strict=True)) for r in rows]

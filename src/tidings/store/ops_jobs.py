"""Store operations for scheduled sends (``time_to_send``) and for withdrawing messages.

A scheduled job is one row until it fires. Firing deletes the row and commits the send in the
same transaction, so however many nodes poll, a job fires once; deleting a job deletes the same
row, so a deleted job never fires. The job id is the message id the send answered with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tidings.core.models import (
    FiredJob,
    Message,
    Notification,
    ScheduledJob,
    TargetKind,
    TopicOp,
    UnicastResult,
)
from tidings.store import ops, ops_stats

if TYPE_CHECKING:
    from tidings.store.ops import Tx


def schedule(tx: Tx, jobs: Sequence[ScheduledJob], now: int) -> None:
    tx.many(
        "INSERT INTO scheduled_jobs (job_id, app_id, kind, body, topics, topic_op, targets,"
        " jobkey, ttl_ms, durable, fire_at, created_at)"
        f" VALUES ({', '.join('?' * 12)})",
        [
            (
                j.message.msg_id,
                j.message.app_id,
                j.message.kind.value,
                j.message.notification.to_json(),
                json.dumps(list(j.message.topics)) if j.message.topics else "",
                j.message.topic_op.value,
                json.dumps(list(j.targets)),
                j.message.jobkey,
                j.message.expires_at - j.message.created_at,
                1 if j.durable else 0,
                j.fire_at,
                now,
            )
            for j in jobs
        ],
    )


def send_and_schedule(
    tx: Tx,
    items: Sequence[tuple[Message, Sequence[str]]],
    jobs: Sequence[ScheduledJob],
    cap: int,
    now: int,
    quotas: Mapping[str, int] | None = None,
) -> list[UnicastResult]:
    """A multi-message request: its immediate and its scheduled entries in one transaction."""
    schedule(tx, jobs, now)
    return ops.send_unicast_batch(tx, items, cap, quotas)


def due(tx: Tx, now: int, limit: int) -> list[str]:
    rows = tx.all(
        "SELECT job_id FROM scheduled_jobs WHERE fire_at <= ? ORDER BY fire_at, job_id LIMIT ?",
        (now, limit),
    )
    return [str(r[0]) for r in rows]


def fire(
    tx: Tx, job_id: str, now: int, cap: int, quotas: Mapping[str, int] | None = None
) -> FiredJob | None:
    """Claim a due job (delete its row) and commit its send; None if it is gone or not due.

    The message is dated at its ``time_to_send``: a job whose time to live ran out before it
    could fire (the server was down) is dropped, with a trace that shows nothing resolved.
    """
    row = tx.one(
        "DELETE FROM scheduled_jobs WHERE job_id = ? AND fire_at <= ? RETURNING app_id, kind,"
        " body, topics, topic_op, targets, ttl_ms, durable, fire_at",
        (job_id, now),
    )
    if row is None:
        return None
    app_id, kind, body, topics, op, targets, ttl, durable, fire_at = row
    message = Message(
        msg_id=job_id,
        app_id=str(app_id),
        kind=TargetKind(kind),
        notification=Notification.from_json(body),
        created_at=int(fire_at),
        expires_at=int(fire_at) + int(ttl),
        topics=tuple(json.loads(topics)) if topics else (),
        topic_op=TopicOp(op),
    )
    job = ScheduledJob(message, tuple(json.loads(targets) if targets else ()), bool(durable))
    if ttl and message.expires_at <= now:  # TTL 0 means "whoever is connected when it fires"
        ops_stats.record_message(tx, message, raw=len(set(job.targets)))
        return FiredJob(job, expired=True)
    if not job.durable:
        return FiredJob(job)
    if message.kind.is_broadcast:
        ops.append_log(tx, message)
        return FiredJob(job)
    result = ops.send_unicast(tx, message, job.targets, cap, quotas=quotas, scheduled=True)
    if not (result.reg_ids or result.unmatched):  # nothing stored: the job id still gets a trace
        bad = result.bad_targets
        ops_stats.record_message(
            tx, message, raw=len(set(job.targets)), invalid=len(set(bad)), bad=bad
        )
    return FiredJob(job, result)


def job_exists(tx: Tx, app_id: str, job_id: str) -> bool:
    row = tx.one("SELECT 1 FROM scheduled_jobs WHERE app_id = ? AND job_id = ?", (app_id, job_id))
    return row is not None


def delete_job(tx: Tx, app_id: str, job_id: str, broadcast_only: bool = False) -> bool:
    kinds = " AND kind IN ('topic', 'multi_topic', 'all')" if broadcast_only else ""
    tx.execute(
        f"DELETE FROM scheduled_jobs WHERE app_id = ? AND job_id = ?{kinds}", (app_id, job_id)
    )
    return tx.rowcount() > 0


def delete_jobs_by_jobkey(tx: Tx, app_id: str, jobkey: str) -> int:
    tx.execute("DELETE FROM scheduled_jobs WHERE app_id = ? AND jobkey = ?", (app_id, jobkey))
    return tx.rowcount()


def delete_broadcast(tx: Tx, app_id: str, msg_id: str) -> bool:
    """Withdraw a topic / all message: a pending job, or a stored log entry with the copies not
    yet delivered. Devices that already received it keep it."""
    if delete_job(tx, app_id, msg_id, broadcast_only=True):
        return True
    tx.execute(
        "DELETE FROM messages WHERE app_id = ? AND msg_id = ? AND log_offset IS NOT NULL",
        (app_id, msg_id),
    )
    if tx.rowcount() == 0:
        return False
    tx.execute("DELETE FROM inbox WHERE msg_id = ?", (msg_id,))
    return True


def stop_messages(tx: Tx, app_id: str, msg_ids: Sequence[str]) -> list[str]:
    """Stop messages of the app: delete their pending jobs, log entries and undelivered inbox rows.

    Returns the ids that were found (stored, or scheduled).
    """
    stopped = []
    for msg_id in dict.fromkeys(msg_ids):
        found = delete_job(tx, app_id, msg_id)
        tx.execute("DELETE FROM messages WHERE app_id = ? AND msg_id = ?", (app_id, msg_id))
        if tx.rowcount() > 0:
            tx.execute("DELETE FROM inbox WHERE msg_id = ?", (msg_id,))
            found = True
        if found:
            stopped.append(msg_id)
    return stopped


def messages_with_jobkey(tx: Tx, app_id: str, jobkey: str) -> list[str]:
    """Ids of the app's stored or scheduled messages sent with this ``extra.jobkey``."""
    rows = tx.all(
        "SELECT msg_id FROM message_stats WHERE app_id = ? AND jobkey = ?"
        " UNION SELECT job_id FROM scheduled_jobs WHERE app_id = ? AND jobkey = ?",
        (app_id, jobkey, app_id, jobkey),
    )
    return sorted(str(r[0]) for r in rows)

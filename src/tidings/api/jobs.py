"""Scheduled jobs and withdrawing messages: ``/v2/schedule_job/*``, ``/v3/schedule_job/delete``,
``/v2/message/delete`` and ``/v1/message/switch/stop_by_{id,jobkey}``.

A send with ``time_to_send`` answers with a message id that is also its job id. Deleting a job
removes its row before it fires; stopping a message removes what is not delivered yet.
"""

from __future__ import annotations

from typing import Any

from tidings.api import codes
from tidings.api.call import Call, Handler, envelope, required
from tidings.api.message_form import check_package
from tidings.core import limits
from tidings.errors import ApiError

MAX_IDS = 1000  # message ids or job keys per stop request


async def job_exist(call: Call) -> dict[str, Any]:
    job_id = required(call.params, "job_id")
    if not await call.store.job_exists(call.app.app_id, job_id):
        raise ApiError(codes.MESSAGE_NOT_FOUND, "no such scheduled job")
    return envelope(0, {"job_id": job_id, "exist": True})


async def job_delete(call: Call) -> dict[str, Any]:
    job_id = required(call.params, "job_id")
    if not await call.store.delete_job(call.app.app_id, job_id):
        raise ApiError(codes.MESSAGE_NOT_FOUND, "no such scheduled job")
    return envelope(0, {"job_id": job_id})


async def job_delete_by_jobkey(call: Call) -> dict[str, Any]:
    jobkey = required(call.params, "jobkey")
    deleted = await call.store.delete_jobs_by_jobkey(call.app.app_id, jobkey)
    if not deleted:
        raise ApiError(codes.MESSAGE_NOT_FOUND, "no scheduled job with this jobkey")
    return envelope(0, {"jobkey": jobkey, "deleted": deleted})


async def message_delete(call: Call) -> dict[str, Any]:
    msg_id = required(call.params, "id")
    if not await call.store.delete_broadcast(call.app.app_id, msg_id):
        raise ApiError(
            codes.DELETE_BROADCAST_FAILED, "no pending topic or all message with this id"
        )
    return envelope(0, {"id": msg_id})


def _stop_list(call: Call, *names: str) -> list[str]:
    packages = call.packages()
    if packages:
        check_package(call.app, packages, several_allowed=False)
    values = list(dict.fromkeys(call.params.list(*names)))
    if not values:
        raise ApiError(codes.MISSING_PARAM, f"{names[0]} is required")
    if len(values) > MAX_IDS:
        raise ApiError(codes.ILLEGAL_PARAM, f"at most {MAX_IDS} per request")
    return values


async def stop_by_id(call: Call) -> dict[str, Any]:
    msg_ids = _stop_list(call, "msg_ids", "msg_id")
    stopped = await call.store.stop_messages(call.app.app_id, msg_ids)
    if not stopped:
        raise ApiError(codes.MESSAGE_NOT_FOUND, "no such message")
    return envelope(0, {"stopped": stopped})


async def stop_by_jobkey(call: Call) -> dict[str, Any]:
    jobkeys = _stop_list(call, "job_keys", "job_key", "jobkey")
    for jobkey in jobkeys:
        if not limits.JOBKEY.match(jobkey):
            raise ApiError(codes.ILLEGAL_PARAM, f"{jobkey!r} is not a jobkey")
    store, app_id = call.store, call.app.app_id
    msg_ids = [m for k in jobkeys for m in await store.messages_with_jobkey(app_id, k)]
    stopped = await store.stop_messages(app_id, msg_ids) if msg_ids else []
    if not stopped:
        raise ApiError(codes.MESSAGE_NOT_FOUND, "no message with these job keys")
    return envelope(0, {"stopped": stopped})


ROUTES: dict[str, Handler] = {
    "/v2/schedule_job/exist": job_exist,
    "/v2/schedule_job/delete": job_delete,
    "/v3/schedule_job/delete": job_delete_by_jobkey,
    "/v2/message/delete": message_delete,
    "/v1/message/switch/stop_by_id": stop_by_id,
    "/v1/message/switch/stop_by_jobkey": stop_by_jobkey,
}

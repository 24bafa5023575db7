"""Statistics and message trace: ``/v1/trace/*`` and ``/v1/stats/message/counters``.

Every number comes from the store's exact counters (``store/ops_stats.py``): resolved and
invalid targets at send time, broadcast copies at catch-up, ``delivered`` on device acks,
``click`` on device click reports. Times are shown in UTC.
"""

from __future__ import annotations

import datetime
from typing import Any

from tidings.api import codes
from tidings.api.call import Call, Handler, envelope, int_param, required
from tidings.api.message_form import check_package
from tidings.core.models import DAILY_COUNTERS, MessageStats
from tidings.errors import ApiError

RANGE_LIMIT = 100  # /v1/trace/messages/status answers at most the latest 100 messages
MAX_DAYS = 366  # longest /v1/stats/message/counters range
MSG_TYPE = "Common"


def _rate(part: int, whole: int) -> str:
    return f"{part * 100 // whole if whole else 0}%"


def trace_fields(s: MessageStats) -> dict[str, Any]:
    """One message's counters under Mi Push's field names."""
    created = datetime.datetime.fromtimestamp(s.created_at / 1000, datetime.UTC)
    return {
        "id": s.msg_id,
        "create_time": created.strftime("%Y-%m-%d %H:%M:%S"),
        "create_timestamp": s.created_at,
        "time_to_live": f"{s.ttl_ms // 1000}s",
        "msg_type": MSG_TYPE,
        "raw_counter": s.raw_counter,
        "resolved": s.resolved,
        "invalid_target": s.invalid_target,
        "app_not_register": s.app_not_register,
        "device_condition_unmatch": s.device_condition_unmatch,
        "delivered": s.delivered,
        "delivery_rate": _rate(s.delivered, s.resolved),
        "click": s.click,
        "click_rate": _rate(s.click, s.delivered),
        "bar_closed": s.bar_closed,
    }


async def message_status(call: Call) -> dict[str, Any]:
    """``msg_id``: one message; ``job_key``: every message sent with that ``extra.jobkey``."""
    msg_id, job_key = call.params.get("msg_id"), call.params.get("job_key")
    store, app_id = call.store, call.app.app_id
    if msg_id and msg_id.strip():
        stats = await store.message_stats(app_id, msg_id.strip())
    elif job_key and job_key.strip():
        stats = await store.jobkey_stats(app_id, job_key.strip())
    else:
        raise ApiError(codes.MISSING_PARAM, "msg_id or job_key is required")
    if stats is None:
        raise ApiError(codes.MESSAGE_NOT_FOUND, "no such message")
    return envelope(0, {"data": trace_fields(stats)})


async def messages_status(call: Call) -> dict[str, Any]:
    begin = int_param(call.params, "begin_time")
    end = int_param(call.params, "end_time")
    if begin > end:
        raise ApiError(codes.ILLEGAL_PARAM, "begin_time is after end_time")
    found = await call.store.stats_between(call.app.app_id, begin, end, RANGE_LIMIT)
    return envelope(0, {"data": [trace_fields(s) for s in found]})


def _date(call: Call, name: str) -> datetime.date:
    raw = required(call.params, name)
    try:
        if len(raw) != 8 or not raw.isdigit():
            raise ValueError(raw)
        return datetime.datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        raise ApiError(codes.ILLEGAL_PARAM, f"{name} must be a date written yyyyMMdd") from None


async def message_counters(call: Call) -> dict[str, Any]:
    packages = call.packages()
    if packages:
        check_package(call.app, packages, several_allowed=False)
    first, last = _date(call, "start_date"), _date(call, "end_date")
    if first > last:
        raise ApiError(codes.ILLEGAL_PARAM, "start_date is after end_date")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise ApiError(codes.ILLEGAL_PARAM, f"at most {MAX_DAYS} days per query")
    names = [(first + datetime.timedelta(days=i)).strftime("%Y%m%d") for i in range(days)]
    found = await call.store.daily_stats(call.app.app_id, names[0], names[-1])
    zero = dict.fromkeys(DAILY_COUNTERS, 0)
    rows = [{"date": day, **found.get(day, zero)} for day in names]
    return envelope(0, {"data": rows})


ROUTES: dict[str, Handler] = {
    "/v1/trace/message/status": message_status,
    "/v1/trace/messages/status": messages_status,
    "/v1/stats/message/counters": message_counters,
}

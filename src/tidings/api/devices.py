"""Device tools and feedback: what a device has set, whether it is online, which regIds work.

``/v1/{alias,topic,account}/all`` list one device's aliases, topics and account;
``/v1/regid/presence`` and ``/v2/regid/presence`` say whether devices are connected to this node's
gateway now; ``/v1/validation/regids`` checks regIds; ``/v1/feedback/fetch_invalid_{regids,
aliases}`` hand out (and forget) the regIds and aliases that stopped working.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tidings.api import codes
from tidings.api.call import MAX_REGID, Call, Handler, envelope, required
from tidings.api.message_form import check_package
from tidings.core.models import Device
from tidings.errors import ApiError

FEEDBACK_LIMIT = 1000  # Mi Push hands out at most 1000 invalid regIds or aliases per call


def _check_package(call: Call) -> None:
    check_package(call.app, call.packages(), several_allowed=False)


async def _device(call: Call) -> Device:
    _check_package(call)
    reg_id = required(call.params, "registration_id")
    device = await call.store.get_device(reg_id) if len(reg_id) <= MAX_REGID else None
    if device is None or device.app_id != call.app.app_id:
        raise ApiError(codes.INVALID_DEVICE, "no such device for this app")
    return device


def _lister(pick: Callable[[Device], list[str]]) -> Handler:
    async def handle(call: Call) -> dict[str, Any]:
        return envelope(0, {"list": pick(await _device(call))})

    return handle


def _reg_ids(call: Call, *names: str) -> list[str]:
    values = list(dict.fromkeys(call.params.list(*names)))
    if not values:
        raise ApiError(codes.MISSING_PARAM, f"{names[0]} is required")
    if len(values) > call.api.settings.max_targets:
        raise ApiError(codes.ILLEGAL_PARAM, f"at most {call.api.settings.max_targets} regIds")
    if any(len(v) > MAX_REGID for v in values):
        raise ApiError(codes.ILLEGAL_PARAM, "registration_id is too long")
    return values


async def presence_one(call: Call) -> dict[str, Any]:
    # xmpush-python sends its list form to /v1 too: several ids get the /v2 answer
    if len(call.params.list("registration_id")) > 1:
        return await presence_many(call)
    device = await _device(call)
    online = await call.api.online(device.reg_id)
    return envelope(0, {"registration_id": device.reg_id, "online": online})


async def presence_many(call: Call) -> dict[str, Any]:
    _check_package(call)
    reg_ids = _reg_ids(call, "registration_id", "registration_ids")
    known = await call.store.known_regids(call.app.app_id, reg_ids)
    if not known:
        raise ApiError(codes.INVALID_DEVICE, "no such device for this app")
    found = [r for r in reg_ids if r in known]
    online = await asyncio.gather(*(call.api.online(r) for r in found))
    data: dict[str, Any] = {
        "list": [{"registration_id": r, "online": o} for r, o in zip(found, online, strict=True)]
    }
    bad = [r for r in reg_ids if r not in known]
    if bad:
        data["bad_regids"] = ",".join(bad)
    return envelope(0, data)


async def validate_regids(call: Call) -> dict[str, Any]:
    reg_ids = _reg_ids(call, "registration_ids", "registration_id")
    known = await call.store.known_regids(call.app.app_id, reg_ids)
    return envelope(
        0,
        {
            "valid": [r for r in reg_ids if r in known],
            "invalid": [r for r in reg_ids if r not in known],
        },
    )


async def invalid_regids(call: Call) -> dict[str, Any]:
    found = await call.store.take_invalid_regids(call.app.app_id, FEEDBACK_LIMIT)
    return envelope(0, {"list": found})


async def invalid_aliases(call: Call) -> dict[str, Any]:
    found = await call.store.take_invalid_aliases(call.app.app_id, FEEDBACK_LIMIT)
    return envelope(0, {"list": found})


ROUTES: dict[str, Handler] = {
    "/v1/alias/all": _lister(lambda d: list(d.aliases)),
    "/v1/topic/all": _lister(lambda d: list(d.topics)),
    "/v1/account/all": _lister(lambda d: [d.account] if d.account else []),
    "/v1/regid/presence": presence_one,
    "/v2/regid/presence": presence_many,
    "/v1/validation/regids": validate_regids,
    "/v1/feedback/fetch_invalid_regids": invalid_regids,
    "/v1/feedback/fetch_invalid_aliases": invalid_aliases,
}

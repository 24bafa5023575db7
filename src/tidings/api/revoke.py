"""Revoking shown notifications: ``/v1/message/<target>/revoke``.

A revoke names a display slot (``notify_id``) and targets like a send. The targeted devices that
are connected now get a ``revoke`` frame and take down the notification in that slot; nothing is
stored, so a device that is offline keeps what it shows.
"""

from __future__ import annotations

from typing import Any

from tidings.api import codes
from tidings.api.call import Call, Handler, envelope, int_param
from tidings.api.message_form import check_package
from tidings.core.models import TargetKind
from tidings.errors import ApiError

_NAMES = {
    TargetKind.REGID: ("registration_ids", "registration_id"),
    TargetKind.ALIAS: ("aliases", "alias"),
    TargetKind.ACCOUNT: ("user_accounts", "user_account"),
}
_BAD = {
    TargetKind.REGID: "bad_regids",
    TargetKind.ALIAS: "bad_aliases",
    TargetKind.ACCOUNT: "bad_user_accounts",
}


def _revoke(kind: TargetKind) -> Handler:
    async def handle(call: Call) -> dict[str, Any]:
        check_package(call.app, call.packages(), several_allowed=False)
        notify_id = int_param(call.params, "notify_id", 0, 2**31 - 1)
        sender = call.sender
        if kind is TargetKind.TOPIC:
            await sender.revoke(call.app, notify_id, kind, topics=(call.topic(),))
            return envelope(0, {"notify_id": notify_id})
        if kind is TargetKind.MULTI_TOPIC:
            topics, op = call.topic_expression()
            k = TargetKind.TOPIC if len(topics) == 1 else kind
            await sender.revoke(call.app, notify_id, k, topics=topics, op=op)
            return envelope(0, {"notify_id": notify_id})
        targets = call.targets(kind, *_NAMES[kind])
        result = await sender.revoke(call.app, notify_id, kind, targets)
        data: dict[str, Any] = {"notify_id": notify_id}
        if result.bad_targets:
            data[_BAD[kind]] = ",".join(result.bad_targets)
        if not result.reg_ids:
            raise ApiError(codes.SEND_FAILED, "no valid target", data)
        return envelope(0, data)

    return handle


ROUTES: dict[str, Handler] = {
    "/v1/message/regid/revoke": _revoke(TargetKind.REGID),
    "/v1/message/alias/revoke": _revoke(TargetKind.ALIAS),
    "/v1/message/user_account/revoke": _revoke(TargetKind.ACCOUNT),
    "/v1/message/topic/revoke": _revoke(TargetKind.TOPIC),
    "/v1/message/multi_topic/revoke": _revoke(TargetKind.MULTI_TOPIC),
}

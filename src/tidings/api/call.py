"""What every sender API handler works with: the authenticated call, the JSON envelope, checks.

Handlers live in several modules (``mipush`` for sends and subscriptions, ``trace`` for
statistics, ...); each is ``async def handler(call: Call) -> dict`` returning an envelope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tidings import ids
from tidings.api import codes
from tidings.api.message_form import Draft, check_package, fields_from_params, read_message
from tidings.api.params import Params, decimal
from tidings.core import limits
from tidings.core.models import App, TargetKind, TopicOp
from tidings.errors import ApiError

if TYPE_CHECKING:
    from tidings.api.mipush import MiPushApi
    from tidings.region_stack import RegionStack

MAX_REGID = 256
TOPIC_SEP = ";$;"

Handler = Callable[["Call"], Awaitable[dict[str, Any]]]


def envelope(
    code: int, data: dict[str, Any] | None = None, reason: str = "", info: str = ""
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "result": "ok" if code == 0 else "error",
        "code": code,
        "description": codes.describe(code),
        "trace_id": ids.trace_id(),
    }
    if data is not None:
        body["data"] = data
    if info:
        body["info"] = info
    if reason:
        body["reason"] = reason
    return body


class Call:
    """One authenticated request: the app, its parameters and its region's services."""

    def __init__(
        self, api: MiPushApi, app: App, params: Params, path: str, stack: RegionStack
    ) -> None:
        self.api = api
        self.app = app
        self.params = params
        self.path = path
        self.store = stack.store  # the app's region store: its devices, messages, stats
        self.sender = stack.sender
        self.review = stack.review

    def packages(self) -> list[str]:
        return self.params.list("restricted_package_name")

    def draft(self) -> Draft:
        s = self.api.settings
        check_package(self.app, self.packages(), several_allowed=not self.path.startswith("/v2/"))
        return read_message(
            fields_from_params(self.params),
            ttl_default=s.ttl_default_ms,
            ttl_max=s.ttl_max_ms,
            now=self.sender.now(),
        )

    def targets(self, kind: TargetKind, *names: str) -> list[str]:
        values = self.params.list(*names)
        if not values:
            raise ApiError(codes.MISSING_PARAM, f"{names[0]} is required")
        if len(values) > self.api.settings.max_targets:
            raise ApiError(
                codes.ILLEGAL_PARAM, f"at most {self.api.settings.max_targets} targets per request"
            )
        for value in values:
            check_target(kind, value)
        return values

    def topic_expression(self) -> tuple[tuple[str, ...], TopicOp]:
        """``topics`` (up to 5, joined by ``;$;``) and ``topic_op``."""
        raw = self.params.get("topics")
        if raw is None or not raw.strip():
            raise ApiError(codes.TOPIC_EMPTY, "topics is required")
        topics = tuple(raw.split(TOPIC_SEP))
        if len(topics) > limits.MAX_TOPICS:
            raise ApiError(codes.TOO_MANY_TOPICS, f"at most {limits.MAX_TOPICS} topics")
        for topic in topics:
            problem = limits.check_topic(topic)
            if problem:
                raise ApiError(*problem)
        try:
            op = TopicOp((self.params.get("topic_op") or "UNION").upper())
        except ValueError:
            raise ApiError(
                codes.ILLEGAL_PARAM, "topic_op must be UNION, INTERSECTION or EXCEPT"
            ) from None
        return topics, op

    def topic(self, name: str = "topic") -> str:
        topic = self.params.get(name)
        if topic is None or not topic.strip():
            raise ApiError(codes.TOPIC_EMPTY, f"{name} is required")
        problem = limits.check_topic(topic)
        if problem:
            raise ApiError(*problem)
        return topic


def check_target(kind: TargetKind, value: str) -> None:
    if kind is TargetKind.ALIAS:
        problem = limits.check_alias(value)
    elif kind is TargetKind.ACCOUNT:
        problem = limits.check_account(value)
    else:
        problem = (
            (codes.ILLEGAL_PARAM, "registration_id is too long") if len(value) > MAX_REGID else None
        )
    if problem:
        raise ApiError(*problem)


def int_param(params: Params, name: str, low: int = 0, high: int = 2**63 - 1) -> int:
    """A required decimal integer parameter: 10016 when missing, 10017 when bad."""
    raw = params.get(name)
    if raw is None or not raw.strip():
        raise ApiError(codes.MISSING_PARAM, f"{name} is required")
    return decimal(raw, name, low, high)


def required(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None or not value.strip():
        raise ApiError(codes.MISSING_PARAM, f"{name} is required")
    return value.strip()

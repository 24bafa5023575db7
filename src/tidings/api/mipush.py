"""The Mi Push-compatible sender API: routes, authentication, the JSON envelope.

Every answer is HTTP 200 with ``{result, code, description, data, trace_id, info, reason}`` for
business outcomes (as Mi Push does, so its SDKs read the code), 404 for unknown paths and 503 with
``Retry-After`` when the store is unreachable. Nothing is answered with success before the commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings import ids
from tidings.api import channels, codes, devices, jobs, revoke, trace
from tidings.api.call import Call, Handler, check_target, envelope
from tidings.api.channels import check_channel, quota_error
from tidings.api.message_form import (
    check_package,
    fields_from_json,
    read_message,
)
from tidings.api.params import MAX_BODY, Params, json_param
from tidings.compliance.models import Verdict
from tidings.core.models import App, Message, ScheduledJob, TargetKind, TopicOp
from tidings.core.quotas import TokenBuckets
from tidings.errors import ApiError, StoreError, StoreRefused, StoreUnavailable
from tidings.region_stack import RegionStack
from tidings.settings import Settings
from tidings.store.store import Store

log = logging.getLogger("tidings.api")

ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
AUTH_CACHE_SIZE = 10_000


_INFO_NAMES = {
    TargetKind.REGID: "REGID",
    TargetKind.ALIAS: "ALIAS",
    TargetKind.ACCOUNT: "USER_ACCOUNT",
}
_BAD_FIELD = {
    TargetKind.REGID: "bad_regids",
    TargetKind.ALIAS: "bad_aliases",
    TargetKind.ACCOUNT: "bad_user_accounts",
}


async def _review(call: Call, message: Message, targets: list[str]) -> dict[str, Any] | None:
    """Run content review: raise on reject, answer for a held message, None to go on."""
    decision = await call.review.check(message, targets)
    if decision.verdict is Verdict.REJECT:
        raise ApiError(codes.CONTENT_REJECTED, f"content rejected: {decision.code}")
    if decision.verdict is Verdict.HOLD:
        return envelope(
            0,
            {"id": message.msg_id, "review": "held"},
            info=f"Held for review: {decision.code}",
        )
    return None


async def _send_unicast(call: Call, kind: TargetKind, *names: str) -> dict[str, Any]:
    targets = call.targets(kind, *names)
    draft = call.draft()
    await check_channel(call.store, call.app, draft)
    message = draft.message(call.app, kind, call.sender.now())
    held = await _review(call, message, targets)
    if held is not None:
        return held
    info = f"Received push messages for {len(targets)} {_INFO_NAMES[kind]}"
    if draft.send_at is not None:  # targets are resolved when the job fires
        await call.sender.schedule([ScheduledJob(message, tuple(targets), draft.store)])
        return envelope(0, {"id": message.msg_id}, info=info)
    result = await call.sender.unicast(message, targets, durable=draft.store)
    data: dict[str, Any] = {}
    if result.bad_targets:
        data[_BAD_FIELD[kind]] = ",".join(result.bad_targets)
    if not (result.reg_ids or result.filtered or result.unmatched):  # filtered count as accepted
        if result.over_quota:  # every known target reached its quota
            raise quota_error(result, data)
        raise ApiError(codes.SEND_FAILED, "no valid target", data)
    data["id"] = message.msg_id
    return envelope(0, data, info=info)


async def send_regid(call: Call) -> dict[str, Any]:
    return await _send_unicast(call, TargetKind.REGID, "registration_id")


async def send_alias(call: Call) -> dict[str, Any]:
    return await _send_unicast(call, TargetKind.ALIAS, "alias", "aliases")


async def send_account(call: Call) -> dict[str, Any]:
    return await _send_unicast(call, TargetKind.ACCOUNT, "user_account", "user_accounts")


async def _broadcast(
    call: Call, kind: TargetKind, topics: tuple[str, ...] = (), op: TopicOp = TopicOp.UNION
) -> dict[str, Any]:
    draft = call.draft()
    await check_channel(call.store, call.app, draft)
    message = draft.message(call.app, kind, call.sender.now(), topics, op)
    held = await _review(call, message, [])
    if held is not None:
        return held
    if draft.send_at is not None:
        await call.sender.schedule([ScheduledJob(message, (), draft.store)])
    else:
        await call.sender.broadcast(message, durable=draft.store)
    audience = f"{len(topics)} TOPIC" if topics else "ALL"
    return envelope(0, {"id": message.msg_id}, info=f"Received push messages for {audience}")


async def send_topic(call: Call) -> dict[str, Any]:
    return await _broadcast(call, TargetKind.TOPIC, (call.topic(),))


async def send_multi_topic(call: Call) -> dict[str, Any]:
    topics, op = call.topic_expression()
    if len(topics) == 1:
        return await _broadcast(call, TargetKind.TOPIC, topics)
    return await _broadcast(call, TargetKind.MULTI_TOPIC, topics, op)


async def send_all(call: Call) -> dict[str, Any]:
    return await _broadcast(call, TargetKind.ALL)


async def _nowhere(reg_id: str) -> bool:
    return False


def _multi(kind: TargetKind) -> Handler:
    async def send_multi(call: Call) -> dict[str, Any]:
        raw = call.params.get("messages")
        if not raw:
            raise ApiError(codes.MISSING_PARAM, "messages is required")
        entries = json_param(raw, "messages")
        if not isinstance(entries, list) or not entries:
            raise ApiError(codes.ILLEGAL_PARAM, "messages must be a non-empty JSON array")
        s = call.api.settings
        if len(entries) > s.max_targets:
            raise ApiError(codes.ILLEGAL_PARAM, f"at most {s.max_targets} messages per request")
        now = call.sender.now()
        planned = []
        for entry in entries:  # check everything before storing anything
            if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
                raise ApiError(codes.ILLEGAL_PARAM, "each entry needs a string target")
            check_target(kind, entry["target"])
            fields = fields_from_json(entry.get("message"))
            if fields.get("time_to_send") in (None, "") and call.params.get("time_to_send"):
                fields["time_to_send"] = call.params.get("time_to_send")
            pkgs = fields.get("restricted_package_name") or call.packages()
            if isinstance(pkgs, str):
                pkgs = pkgs.split(",")
            if not isinstance(pkgs, list) or not all(isinstance(p, str) for p in pkgs):
                raise ApiError(
                    codes.ILLEGAL_PARAM, "restricted_package_name must be a string or strings"
                )
            check_package(call.app, pkgs, several_allowed=False)
            draft = read_message(
                fields, ttl_default=s.ttl_default_ms, ttl_max=s.ttl_max_ms, now=now
            )
            await check_channel(call.store, call.app, draft)
            planned.append((entry["target"], draft))
        built = [(draft.message(call.app, kind, now), target, draft) for target, draft in planned]
        # content review: all decided before anything is stored
        decisions = [await call.review.evaluate(m, [t]) for m, t, _ in built]
        for i, d in enumerate(decisions):
            if d is not None and d.verdict is Verdict.REJECT:
                await call.review.record(built[i][0], [built[i][1]], d)
                raise ApiError(codes.CONTENT_REJECTED, f"content rejected: {d.code} (message {i})")
        for (m, t, _), d in zip(built, decisions, strict=True):
            await call.review.record(m, [t], d)
        held_ids = [
            m.msg_id
            for (m, _, _), d in zip(built, decisions, strict=True)
            if d is not None and d.verdict is Verdict.HOLD
        ]
        built = [x for x in built if x[0].msg_id not in held_ids]
        jobs = [ScheduledJob(m, (t,), d.store) for m, t, d in built if d.send_at is not None]
        messages = [(m, t, d.store) for m, t, d in built if d.send_at is None]
        durable = [(m, [t]) for m, t, keep in messages if keep]
        batch = await call.sender.unicast_batch_and_schedule(durable, jobs)
        results = dict(zip([m.msg_id for m, _ in durable], batch, strict=True))
        for m, t, keep in messages:
            if not keep:
                results[m.msg_id] = await call.sender.unicast(m, [t], durable=False)

        # scheduled entries resolve their target when they fire: they count as accepted, and so
        # do known targets left out by consent or by the message's device filters
        def accepted(msg_id: str) -> bool:
            r = results[msg_id]
            return bool(r.reg_ids or r.filtered or r.unmatched)

        # entries whose target reached its daily quota: counted per channel, as Mi Push does,
        # instead of 200001
        over_quota: dict[str, int] = {}
        for m, _, _ in messages:
            if not accepted(m.msg_id) and results[m.msg_id].over_quota:
                channel = m.notification.extra.get("channel_id") or "default"
                over_quota[channel] = over_quota.get(channel, 0) + 1
        sent_ids = [m.msg_id for m, _, d in built if d.send_at is not None or accepted(m.msg_id)]
        sent_ids += held_ids
        bad = [
            t for m, t, _ in messages if not accepted(m.msg_id) and not results[m.msg_id].over_quota
        ]
        data: dict[str, Any] = {_BAD_FIELD[kind]: ",".join(bad)} if bad else {}
        if held_ids:
            data["held_ids"] = held_ids
        if over_quota:
            data["channel_exceed_quota"] = over_quota
        if not sent_ids and not over_quota:
            raise ApiError(codes.SEND_FAILED, "no valid target", data)
        if sent_ids:
            data["id"] = sent_ids[0]
        data["ids"] = sent_ids
        return envelope(
            0, data, info=f"Received push messages for {len(entries)} {_INFO_NAMES[kind]}"
        )

    return send_multi


def _subscription(by_alias: bool, on: bool) -> Handler:
    async def handle(call: Call) -> dict[str, Any]:
        pkgs = call.packages()
        if pkgs:
            check_package(call.app, pkgs, several_allowed=False)
        topic = call.topic()
        kind = TargetKind.ALIAS if by_alias else TargetKind.REGID
        names = ("aliases", "alias") if by_alias else ("registration_id",)
        targets = call.targets(kind, *names)
        regs, bad = await call.store.resolve_targets(call.app.app_id, kind, targets)
        if not regs:
            fail = codes.SUBSCRIBE_FAILED if on else codes.UNSUBSCRIBE_FAILED
            raise ApiError(fail, "no valid target", {_BAD_FIELD[kind]: ",".join(bad)})
        await call.sender.subscribe(call.app, regs, topic, on)
        data = {_BAD_FIELD[kind]: ",".join(bad)} if bad else None
        return envelope(0, data, reason="Success")

    return handle


ROUTES: dict[str, Handler] = {
    "/v2/message/regid": send_regid,
    "/v3/message/regid": send_regid,
    "/v4/message/regid": send_regid,
    "/v2/message/alias": send_alias,
    "/v3/message/alias": send_alias,
    "/v2/message/user_account": send_account,
    "/v2/message/topic": send_topic,
    "/v3/message/topic": send_topic,
    "/v2/message/multi_topic": send_multi_topic,
    "/v3/message/multi_topic": send_multi_topic,
    "/v2/message/all": send_all,
    "/v3/message/all": send_all,
    "/v2/multi_messages/regids": _multi(TargetKind.REGID),
    "/v2/multi_messages/aliases": _multi(TargetKind.ALIAS),
    "/v2/multi_messages/user_accounts": _multi(TargetKind.ACCOUNT),
    "/v2/topic/subscribe": _subscription(by_alias=False, on=True),
    "/v2/topic/unsubscribe": _subscription(by_alias=False, on=False),
    "/v2/topic/subscribe/alias": _subscription(by_alias=True, on=True),
    "/v2/topic/unsubscribe/alias": _subscription(by_alias=True, on=False),
    **trace.ROUTES,
    **devices.ROUTES,
    **jobs.ROUTES,
    **revoke.ROUTES,
    **channels.ROUTES,
}


class MiPushApi:
    """Authenticates against the control store, then serves the app from its region's stack."""

    def __init__(
        self,
        control: Store,
        stacks: Mapping[str, RegionStack],
        settings: Settings,
        online: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.store = control
        self.stacks = stacks
        self.settings = settings
        self.online = online or _nowhere  # is the device connected right now
        # AppSecret digest -> (app, fetched at): saves a database read per request
        self._apps: dict[str, tuple[App, float]] = {}
        self._rates = TokenBuckets()  # per-app request rate (the active limits' qps)

    def routes(self) -> list[Route]:
        """The API's paths as Starlette routes, which the node reaches only for the methods
        :mod:`sender_app` does not serve: every one answers 405 / 10021 (HEAD too, which
        Starlette would otherwise take as a GET)."""
        return [Route(path, _refuse_method, methods=ALL_METHODS) for path in ROUTES]

    async def respond(
        self,
        handler: Handler,
        path: str,
        query: bytes,
        body: bytes,
        content_type: str,
        authorization: str,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one request: (HTTP status, JSON envelope, extra headers)."""
        app: App | None = None
        try:
            if len(body) > MAX_BODY:
                raise ApiError(codes.PARAM_ERROR, f"request body over {MAX_BODY} bytes")
            app = await self._authenticate(authorization)
            params = Params.parse(query, body, content_type)
            qps = (await self.store.limits()).qps
            if qps is not None and not self._rates.take(app.app_id, qps):
                raise ApiError(
                    codes.RATE_LIMITED, f"request rate over {qps} per second for this app"
                )
            stack = self.stacks.get(app.region)
            if stack is None:
                served = ", ".join(self.stacks) or "none"
                raise ApiError(
                    codes.REGION_NOT_SERVED,
                    f"the app's region {app.region} is not served by this node (it serves"
                    f" {served}); send to a node of region {app.region}",
                )
            return 200, await handler(Call(self, app, params, path, stack)), {}
        except ApiError as err:
            if err.code == codes.BAD_PACKAGE and app is not None:  # credentials used elsewhere
                await self.store.accounts.record_misuse(app.app_id, "sender_package", err.reason)
            return 200, envelope(err.code, err.data, reason=err.reason), {}
        except StoreRefused as err:
            log.warning("store refused a value: %s", err)
            return 200, envelope(codes.ILLEGAL_PARAM, reason="a value cannot be stored"), {}
        except StoreUnavailable as err:
            log.warning("store unavailable: %s", err)
            busy = envelope(codes.SYSTEM_BUSY, reason="storage unavailable, retry later")
            return 503, busy, {"Retry-After": "1"}
        except StoreError as err:
            log.error("store error: %s", err)
            busy = envelope(codes.SYSTEM_BUSY, reason="storage error, retry")
            return 503, busy, {"Retry-After": "1"}

    async def _authenticate(self, header: str) -> App:
        scheme, _, secret = header.partition("=")
        if scheme.strip().lower() != "key" or not secret.strip():
            raise ApiError(codes.AUTH_FAILED, "Invalid application secret.")
        secret = secret.strip()
        digest = ids.secret_hash(secret)
        cached = self._apps.get(digest)
        now = time.monotonic()
        if cached is not None and now - cached[1] < self.settings.auth_cache_s:
            app = cached[0]
        else:
            found = await self.store.app_by_secret(secret)
            if found is None:
                raise ApiError(codes.AUTH_FAILED, "Invalid application secret.")
            if len(self._apps) >= AUTH_CACHE_SIZE:
                self._apps.clear()
            self._apps[digest] = (found, now)
            app = found
        await self._check_standing(app, digest)
        return app

    async def _check_standing(self, app: App, digest: str) -> None:
        """Account state, terms and a rotated secret: read on every request, never cached."""
        grace_ms = int(self.settings.terms_grace_days * 86_400_000)
        standing = await self.store.accounts.app_standing(app.app_id, grace_ms, digest)
        if standing is None:
            return
        kind, reason = standing
        if kind == "secret":
            self._apps.pop(digest, None)
            raise ApiError(codes.AUTH_FAILED, reason)
        raise ApiError(
            codes.ACCOUNT_BLOCKED if kind == "blocked" else codes.TERMS_NOT_ACCEPTED, reason
        )


async def not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        envelope(codes.API_NOT_FOUND, reason=f"no API at {request.url.path}"), status_code=404
    )


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        envelope(codes.METHOD_NOT_ALLOWED, reason=f"{request.method} is not supported"),
        status_code=405,
    )


async def _refuse_method(request: Request) -> Response:
    response = await method_not_allowed(request, Exception())
    response.headers["Allow"] = ", ".join(ALL_METHODS)
    return response


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return JSONResponse(envelope(codes.SYSTEM_ERROR, reason="internal error"), status_code=500)


ERROR_HANDLERS = {404: not_found, 405: method_not_allowed, 500: internal_error}

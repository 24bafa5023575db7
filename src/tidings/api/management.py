"""The management API under ``/api/v1``: operations declared as data, auth, one error shape.

Each :class:`Op` names its method, path, handler, who may call it and the JSON fields its body
takes; the routes and the OpenAPI document (``/api/v1/openapi.json``) are both built from that
list, so they cannot disagree. Every refusal is ``{"error": {"code", "message"}}`` with a stable
code (pinned by ``tests/api/test_management_errors.py``). Callers authenticate with a personal API
token (``Authorization: Bearer tdk_…``), the login cookie, or the operator ``admin_token``.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.compliance.account_models import AccountState, Developer, Role
from tidings.compliance.accounts import AccountService, actor_of
from tidings.compliance.sdk_policy import SdkPolicyService
from tidings.compliance.states import AccountStates
from tidings.compliance.terms import TermsService
from tidings.core.limits import UNSTORABLE, is_decimal, unstorable_text
from tidings.core.models import App
from tidings.errors import ManagementError, RegionNotServed, StoreError, StoreRefused
from tidings.residency import Residency
from tidings.settings import Settings
from tidings.store.store import Store

log = logging.getLogger("tidings.management")

PREFIX = "/api/v1"
COOKIE = "tidings_session"
MAX_BODY = 65_536

# auth levels an operation asks for
PUBLIC, ANY, OPERATOR = "public", "any", "operator"


@dataclasses.dataclass(frozen=True)
class Field:
    type: str  # JSON schema type: string, integer, boolean
    required: bool = False
    help: str = ""
    max_length: int | None = None


@dataclasses.dataclass
class Ctx:
    """One management request: who calls, the checked JSON body, where from."""

    request: Request
    dev: Developer | None
    body: dict[str, Any]
    source: str
    api: ManagementApi

    @property
    def caller(self) -> Developer:
        assert self.dev is not None  # only for ANY / OPERATOR operations
        return self.dev

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        """An integer query parameter clamped to ``low..high``; 400 ``invalid_field`` if not one."""
        text = self.request.query_params.get(name, str(default))
        if not is_decimal(text) or len(text.lstrip("-")) > 19:
            raise ManagementError(400, "invalid_field", f"{name} must be a decimal integer")
        return min(max(int(text), low), high)

    def limit(self) -> int:
        """The ``limit`` query parameter of a listing: 1..1000, default 100."""
        return self.query_int("limit", 100, 1, 1000)

    def region_store(self, app: App) -> Store:
        """The store of ``app``'s region (409 ``region_not_served`` when not on this node)."""
        return self.api.residency.store(app.region)


Handler = Callable[[Ctx], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Op:
    method: str
    path: str  # below PREFIX, Starlette syntax ("/apps/{app_id}")
    handler: Handler
    summary: str
    auth: str = ANY
    fields: dict[str, Field] = dataclasses.field(default_factory=dict)
    status: int = 200
    tag: str = ""

    @property
    def op_id(self) -> str:
        return self.handler.__name__


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def ok(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


ADMIN_TOKEN_ID = "admin_token"  # the operator the admin_token acts as: no account behind it


def _operator_from_admin_token() -> Developer:
    return Developer(
        developer_id=ADMIN_TOKEN_ID,
        email="",
        password_hash="!",
        legal_name="operator (admin_token)",
        region="",
        role=Role.OPERATOR.value,
        state=AccountState.ACTIVE.value,
        state_reason="",
        state_since=0,
        deadline=None,
        created_at=0,
    )


async def read_body(request: Request, cap: int, too_large: Exception | None = None) -> bytes:
    """The request body, refused (``too_large``, else a 413 ``ManagementError``) as soon as it
    passes ``cap`` bytes: never read whole first, so a huge body costs no memory."""
    if too_large is None:
        message = f"request bodies are at most {cap} bytes"
        too_large = ManagementError(413, "body_too_large", message)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _check_body(raw: bytes, fields: dict[str, Field]) -> dict[str, Any]:
    if not raw.strip():
        body: Any = {}
    else:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise ManagementError(400, "invalid_json", "the body is not JSON") from None
        if unstorable_text(body):
            raise ManagementError(400, "invalid_json", UNSTORABLE)
    if not isinstance(body, dict):
        raise ManagementError(400, "invalid_json", "the body must be a JSON object")
    extra = sorted(set(body) - set(fields))
    if extra:
        raise ManagementError(400, "unknown_field", f"unknown field(s): {', '.join(extra)}")
    kinds = {"string": str, "integer": int, "boolean": bool}
    for name, f in fields.items():
        if name not in body or body[name] is None:
            if f.required:
                raise ManagementError(400, "missing_field", f"{name} is required")
            body.pop(name, None)
            continue
        value = body[name]
        wrong = not isinstance(value, kinds[f.type]) or (
            f.type == "integer" and isinstance(value, bool)
        )
        if wrong or (f.max_length is not None and len(value) > f.max_length):
            limit = f" of at most {f.max_length} characters" if f.max_length else ""
            raise ManagementError(400, "invalid_field", f"{name} must be a {f.type}{limit}")
    return body


class ManagementApi:
    """``residency``: the control store (``self.store``) and the served regions' stores."""

    def __init__(
        self, residency: Residency, settings: Settings, ops: list[Op], **services: Any
    ) -> None:
        self.residency = residency
        self.store = store = residency.control
        self.settings = settings
        self.accounts = AccountService(store, settings.session_ttl_s, residency)
        self.terms = TermsService(store, settings.terms_grace_days)
        self.sdk = SdkPolicyService(store)
        self.states = AccountStates(
            store, settings.cure_period_days, settings.termination_notice_days, self.accounts
        )
        self.services = services
        self.ops = ops

    async def caller(self, request: Request) -> Developer | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() == "bearer" and given:
            token = self.settings.admin_token
            if token and hmac.compare_digest(given.encode(), token.encode()):
                return _operator_from_admin_token()
            return await self.accounts.holder(given, "api")
        session = request.cookies.get(COOKIE)
        if session:
            return await self.accounts.holder(session, "session")
        return None

    def _endpoint(self, op: Op) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            source = request.client.host if request.client else ""
            dev: Developer | None = None
            handled = False
            try:
                if op.auth != PUBLIC:
                    dev = await self.caller(request)
                    if dev is None:
                        raise ManagementError(
                            401, "unauthorized", "a valid API token or login session is required"
                        )
                    if op.auth == OPERATOR and dev.role != Role.OPERATOR:
                        raise ManagementError(403, "forbidden", "operators only")
                writes = op.method in ("POST", "PUT", "PATCH")
                raw = await read_body(request, MAX_BODY) if writes else b""
                body = _check_body(raw, op.fields)
                handled = True  # from here on, login audits its own outcome
                try:
                    return await op.handler(Ctx(request, dev, body, source, self))
                except RegionNotServed as not_here:
                    raise ManagementError(409, "region_not_served", not_here.reason) from None
            except ManagementError as exc:
                audits_itself = op.op_id == "login" and handled
                if op.method != "GET" and not exc.audited and not audits_itself:
                    await self._audit_refusal(op, dev, request, source, exc)
                return error(exc.status, exc.code, exc.message)
            except StoreRefused as exc:
                log.warning("store refused a value: %s", exc)
                return error(400, "invalid_value", "a value cannot be stored")
            except StoreError as exc:
                log.warning("store error: %s", exc)
                return error(503, "unavailable", "storage unavailable, retry later")

        return endpoint

    async def _audit_refusal(
        self, op: Op, dev: Developer | None, request: Request, source: str, exc: ManagementError
    ) -> None:
        try:
            await self.store.accounts.audit(
                actor_of(dev) if dev else "anonymous",
                dev.developer_id if dev and dev.role == Role.DEVELOPER else None,
                op.op_id,
                request.url.path,
                source,
                exc.code,
                exc.message,
            )
        except StoreError as err:
            log.warning("audit write failed: %s", err)

    def app(self) -> Starlette:
        from tidings.api.openapi import document

        doc = document(self.ops, PREFIX)

        async def openapi(request: Request) -> Response:
            return JSONResponse(doc)

        async def not_found(request: Request, exc: Exception) -> Response:
            return error(404, "not_found", f"no operation at {request.url.path}")

        async def not_allowed(request: Request, exc: Exception) -> Response:
            return error(405, "method_not_allowed", f"{request.method} is not allowed here")

        async def internal(request: Request, exc: Exception) -> Response:
            log.exception("unexpected error on %s", request.url.path, exc_info=exc)
            return error(500, "internal_error", "internal error")

        routes = [Route("/openapi.json", openapi, methods=["GET"])]  # mounted at PREFIX
        by_path: dict[str, dict[str, Op]] = {}
        for op in self.ops:
            by_path.setdefault(op.path, {})[op.method] = op
        for path, methods in by_path.items():
            routes.append(Route(path, self._dispatch(methods), methods=list(methods)))
        app = Starlette(
            routes=routes,
            exception_handlers={404: not_found, 405: not_allowed, 500: internal},
        )
        app.router.redirect_slashes = False  # a path with a slash too many is not found
        return app

    def _dispatch(self, methods: dict[str, Op]) -> Callable[[Request], Awaitable[Response]]:
        endpoints = {m: self._endpoint(op) for m, op in methods.items()}

        async def dispatch(request: Request) -> Response:
            # HEAD is a GET without its body (Starlette routes it here for every GET path)
            endpoint = endpoints.get("GET" if request.method == "HEAD" else request.method)
            if endpoint is None:
                return error(405, "method_not_allowed", f"{request.method} is not allowed here")
            return await endpoint(request)

        return dispatch

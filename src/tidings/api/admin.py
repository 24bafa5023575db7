"""A few operator endpoints under ``/admin`` (until the management API exists): the review queue.

Enabled only when the ``admin_token`` setting is set; every request must carry
``Authorization: Bearer <admin_token>``. Answers are JSON; errors are
``{"error": <code>, "reason": ...}`` with HTTP 401 (no or wrong token), 404 (disabled or unknown),
409 (the message is not held) or 400 (bad input).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.api.management import read_body
from tidings.compliance.moderation import ReviewDesk
from tidings.core.limits import unstorable_text
from tidings.errors import ComplianceError, ManagementError, StoreRefused

MAX_BODY = 16_384


def _error(status: int, code: str, reason: str) -> JSONResponse:
    return JSONResponse({"error": code, "reason": reason}, status_code=status)


class AdminApi:
    def __init__(self, desk: ReviewDesk, token: str) -> None:
        self.desk = desk
        self.token = token

    def routes(self) -> list[Route]:
        return [
            Route("/admin/review/queue", self._guard(self.queue), methods=["GET"]),
            Route(
                "/admin/review/{msg_id}/approve",
                self._guard(self.decide(approve=True)),
                methods=["POST"],
            ),
            Route(
                "/admin/review/{msg_id}/reject",
                self._guard(self.decide(approve=False)),
                methods=["POST"],
            ),
            Route("/admin/review/{msg_id}", self._guard(self.show), methods=["GET"]),
        ]

    def _guard(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self.token:
                return _error(404, "disabled", "admin endpoints are disabled (admin_token)")
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return _error(401, "unauthorized", "a valid operator token is required")
            try:
                return await handler(request)
            except StoreRefused:  # a value no store keeps (U+0000 in an id on PostgreSQL)
                return _error(400, "bad_request", "a value cannot be stored")

        return endpoint

    async def queue(self, request: Request) -> Response:
        try:
            limit = min(max(int(request.query_params.get("limit", "100")), 1), 1000)
        except ValueError:
            return _error(400, "bad_request", "limit must be a number")
        items = await self.desk.held_messages(request.query_params.get("app_id"), limit)
        return JSONResponse({"held": [held_json(i) for i in items]})

    async def show(self, request: Request) -> Response:
        msg_id = request.path_params["msg_id"]
        found = await self.desk.show(msg_id)
        if found is None:
            return _error(404, "not_found", "no such message in the review queue")
        item, decisions = found
        return JSONResponse({"message": held_json(item), "decisions": decisions})

    def decide(self, approve: bool) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                raw = await read_body(request, MAX_BODY)
            except ManagementError as exc:
                return _error(exc.status, exc.code, exc.message)
            try:
                body = json.loads(raw) if raw.strip() else {}
            except (ValueError, RecursionError):
                body = None
            if not isinstance(body, dict) or unstorable_text(body):
                return _error(400, "bad_request", "body must be a JSON object")
            actor = str(body.get("actor") or "operator")[:128]
            reason = str(body.get("reason") or "")[:512]
            msg_id = request.path_params["msg_id"]
            if await self.desk.find(msg_id) is None:
                return _error(404, "not_found", "no such message in the review queue")
            try:
                item = await self.desk.decide(msg_id, approve, actor, reason)
            except ComplianceError as exc:
                return _error(409, "not_held", str(exc))
            return JSONResponse({"message": held_json(item)})

        return handle


def held_json(item: Any) -> dict[str, Any]:
    out = dataclasses.asdict(item)
    out["body"] = json.loads(out["body"])
    out["targets"] = list(out["targets"])
    out["topics"] = list(out["topics"])
    return out

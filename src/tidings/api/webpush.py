"""Web Push's HTTP side (RFC 8030): application servers POST encrypted messages to a browser
subscription's push endpoint, and may DELETE one (its ``Location``) before it is delivered.

Answers: ``201 Created`` with ``Location`` and the ``TTL`` applied; errors as JSON
``{"code", "errno", "error", "message"}`` (see docs/webpush.md).
"""

from __future__ import annotations

from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.api.management import read_body
from tidings.core.webpush import ERRNO_TOO_LARGE, MAX_BODY
from tidings.core.webpush_service import WebPushService
from tidings.errors import PushRefused


class WebPushApi:
    def __init__(self, service: WebPushService) -> None:
        self.service = service

    def routes(self) -> list[Route]:
        return [
            Route("/wpush/{token}", self.push, methods=["POST"]),
            Route("/wpush/m/{version}", self.take_back, methods=["DELETE"]),
        ]

    async def push(self, request: Request) -> Response:
        try:
            too_large = PushRefused(413, ERRNO_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
            body = await read_body(request, MAX_BODY, too_large)
            version, ttl = await self.service.push(
                request.path_params["token"], request.headers, body
            )
        except PushRefused as refused:
            return refusal(refused)
        location = f"{self.service.base_url}/wpush/m/{version}"
        return Response(status_code=201, headers={"Location": location, "TTL": str(ttl)})

    async def take_back(self, request: Request) -> Response:
        if await self.service.take_back(request.path_params["version"]):
            return Response(status_code=204)
        return refusal(PushRefused(404, 106, "no such message waits"))


def refusal(refused: PushRefused) -> JSONResponse:
    headers = {"Retry-After": "60"} if refused.status == 429 else None
    return JSONResponse(
        {
            "code": refused.status,
            "errno": refused.errno,
            "error": HTTPStatus(refused.status).phrase,
            "message": refused.message,
        },
        status_code=refused.status,
        headers=headers,
    )

"""The HTTP front of a node: sender API routes straight on ASGI, everything else to Starlette.

The Mi Push paths are the hot path (thousands of requests a second), so they skip the framework:
one dict lookup, the body read with a size cap, one JSON answer. Other paths (health, admin, and
the JSON 404/405/500 answers) go to the Starlette application.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tidings.api import codes
from tidings.api.mipush import ALL_METHODS, ROUTES, MiPushApi, envelope
from tidings.api.params import MAX_BODY

log = logging.getLogger("tidings.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


class SenderApp:
    def __init__(self, api: MiPushApi, fallback: ASGIApp) -> None:
        self.api = api
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] not in ALL_METHODS:
            await self.fallback(scope, receive, send)
            return
        content_type = authorization = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        body, too_big = await _read_body(receive)
        if body is None:  # the client went away before its body was whole: nothing to answer
            return
        headers: dict[str, str]
        if too_big:
            status, answer, headers = (
                200,
                envelope(codes.PARAM_ERROR, reason=f"request body over {MAX_BODY} bytes"),
                {},
            )
        else:
            try:
                status, answer, headers = await self.api.respond(
                    handler,
                    scope["path"],
                    scope["query_string"],
                    body,
                    content_type,
                    authorization,
                )
            except Exception:  # a bug: answer in the API's shape, log it
                log.exception("unexpected error on %s", scope["path"])
                status, answer, headers = (
                    500,
                    envelope(codes.SYSTEM_ERROR, reason="internal error"),
                    {},
                )
        payload = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        raw_headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive) -> tuple[bytes | None, bool]:
    """The request body, or (b"", True) once it passes MAX_BODY (the rest is drained); None
    when the client disconnects first (a cut-off body must not be taken for a whole one)."""
    chunks: list[bytes] = []
    size, too_big = 0, False
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, too_big
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            too_big, chunks = True, []
        elif not too_big:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), too_big

"""Bad requests to the sender API over plain HTTP: each gets its documented answer, and nothing
is sent or stored for it. (The SDK-shaped cases are in test_mipush_sdk.py.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.e2e.helpers import Phone
from tidings.core.models import NewApp
from tidings.node import Node

PKG = "com.example.demo"
MSG = {"restricted_package_name": PKG, "title": "t", "description": "d"}


def _client(node: Node, app: NewApp | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"key={app.app_secret}"} if app else {}
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.api_port}", headers=headers)


def _multi(target: str, **message: Any) -> dict[str, str]:
    entry = {"target": target, "message": {"title": "t", "description": "d", **message}}
    return {"restricted_package_name": PKG, "messages": json.dumps([entry])}


async def test_refused_requests_send_nothing(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app, aliases=["al"]).start()
    async with _client(node, app) as http:
        # HEAD is not a GET: 405 and no send (the framework would take it for one)
        r = await http.head("/v3/message/regid", params={**MSG, "registration_id": phone.reg_id})
        assert r.status_code == 405
        r = await http.post("/v3/message/regid/", data={**MSG, "registration_id": phone.reg_id})
        assert (r.status_code, r.json()["code"]) == (404, 10020)  # no redirect to the real path
        nested = {"restricted_package_name": PKG, "messages": "[" * 100_000 + "]" * 100_000}
        for path, data in [
            ("/v2/multi_messages/aliases", nested),
            ("/v2/multi_messages/aliases", _multi("al", extra="[" * 100_000 + "]" * 100_000)),
            ("/v2/multi_messages/aliases", _multi("al", restricted_package_name=[["x"]])),
            ("/v2/multi_messages/aliases", _multi("al", restricted_package_name=[{"x": 1}])),
            ("/v2/multi_messages/aliases", _multi("al", payload={"a": 1})),
            ("/v2/multi_messages/aliases", _multi("al", title=5)),
            ("/v2/multi_messages/aliases", _multi("al", extra={"k": True})),
            ("/v2/multi_messages/aliases", _multi("al", extra={"k": {"o": 1}})),
            ("/v2/multi_messages/aliases", _multi("al", extra={"k": "a\u0000b"})),
            ("/v2/multi_messages/aliases", _multi("al", extra=json.dumps({"k": "a\u0000b"}))),
            ("/v2/multi_messages/aliases", _multi("al\u0000")),
        ]:
            r = await http.post(path, data=data)
            assert (r.status_code, r.json()["code"]) == (200, 10017), (data, r.text[:200])
        long_name = "x" * 100_000  # refused, and not echoed back whole
        r = await http.post(
            "/v3/message/alias",
            data={**MSG, "alias": "al"} | {"restricted_package_name": long_name},
        )
        assert r.json()["code"] == 22022 and len(r.text) < 1000
    async with _client(node, None) as http:  # who asks is checked before what is asked
        r = await http.post(
            "/v3/message/alias",
            content=b"\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.json()["code"] == 21301
    await asyncio.sleep(0.3)
    assert phone.messages == []
    assert (await node.store.counts())["messages"] == 0
    await phone.stop()


async def test_a_body_cut_off_by_the_client_is_not_sent(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app, aliases=["al"]).start()
    body = f"restricted_package_name={PKG}&title=cut&description=d&alias=al".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", node.api_port)
    writer.write(
        b"POST /v3/message/alias HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: key={app.app_secret}\r\n".encode()
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body) + 200}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    await asyncio.sleep(0.1)  # the server has read what came
    writer.write_eof()  # and the client gives up before the body is whole
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert b'"code":0' not in answer
    await asyncio.sleep(0.3)
    assert phone.messages == []
    assert (await node.store.counts())["messages"] == 0
    # the same request whole is sent
    async with _client(node, app) as http:
        r = await http.post(
            "/v3/message/alias",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.json()["code"] == 0
    await phone.wait_for(1)
    await phone.stop()

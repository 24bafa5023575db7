"""Receipts to extra.callback: batched, Mi Push's form, Standard Webhooks signatures, no SSRF."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from xmpush.APISender import APISender

from tests.e2e.helpers import Phone, point_xmpush_at, running_node
from tests.e2e.test_mipush_sdk import BASE, call, code_of, message
from tidings.core.models import NewApp
from tidings.node import Node

PKG = "com.example.demo"


class Receiver:
    """A loopback HTTP server recording every request (method, path, headers, body)."""

    def __init__(self, status: int = 200, headers: str = "") -> None:
        self.requests: list[tuple[str, dict[str, str], str]] = []
        self.connections = 0
        self.status = status
        self.extra_headers = headers
        self.port = 0
        self.got = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        first, *lines = head.split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
        body = (await reader.readexactly(int(headers.get("content-length", "0")))).decode()
        self.requests.append((first.split()[1], headers, body))
        self.got.set()
        reason = "OK" if self.status == 200 else "Other"
        writer.write(
            f"HTTP/1.1 {self.status} {reason}\r\nContent-Length: 0\r\n{self.extra_headers}"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Receiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/receipts?k=1"

    def events(self) -> list[dict[str, Any]]:
        out = []
        for _path, _headers, body in self.requests:
            data = json.loads(urllib.parse.parse_qs(body)["data"][0])
            out.extend({"msg_id": k, **v} for k, v in data.items())
        return out

    async def wait(self, cond: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                self.got.clear()
                await self.got.wait()


@contextlib.asynccontextmanager
async def receiving_node(
    tmp_path: Path, receiver: Receiver | None = None, **overrides: Any
) -> AsyncIterator[tuple[Receiver, Node]]:
    """A receipt receiver and a node allowed to post receipts to it (fast batches), with Mi Push's
    SDK pointed at the node."""
    async with (
        (receiver or Receiver()).serving() as rx,
        running_node(
            tmp_path / "d", receipt_allow_private=True, receipt_interval_s=0.2, **overrides
        ) as node,
    ):
        point_xmpush_at(node)
        yield rx, node


async def test_receipts_are_batched_signed_and_complete(tmp_path: Path) -> None:
    async with receiving_node(tmp_path, ack_timeout_s=0.5) as (rx, node):
        app: NewApp = await node.create_app("Demo", PKG)
        phone = await Phone(node, app).start()
        extra = {"callback": rx.url, "callback.param": "p-1", "callback.type": "19", "jobkey": "j1"}
        r = await call(
            APISender(app.app_secret).send,
            message("hi", **extra),
            f"{phone.reg_id},ghost",
            retry_times=1,
        )
        [got] = await phone.wait_for(1)
        await phone.client.click(got)
        await rx.wait(lambda: {e["type"] for e in rx.events()} == {1, 2, 16})
        by_type = {e["type"]: e for e in rx.events()}
        assert by_type[16]["targets"] == "ghost"
        assert by_type[1]["targets"] == phone.reg_id and by_type[2]["targets"] == phone.reg_id
        for e in by_type.values():
            assert e["msg_id"] == r.data.id and e["param"] == "p-1" and e["jobkey"] == "j1"
            assert abs(e["timestamp"] - time.time() * 1000) < 60_000
        secret = await node.store.receipt_key(app.app.app_id)
        assert secret.startswith("whsec_")
        verifier = Webhook(secret)
        for path, headers, body in rx.requests:
            assert path == "/receipts?k=1" and headers["host"] == f"127.0.0.1:{rx.port}"
            verifier.verify(
                body, headers, json_parse=False
            )  # the reference verifier accepts every genuine one
            tampered = body.replace("ghost", "ghosT") if "ghost" in body else body + "&x=1"
            try:
                verifier.verify(tampered, headers, json_parse=False)
            except WebhookVerificationError:
                pass
            else:
                raise AssertionError("a tampered receipt verified")
        await asyncio.sleep(0.5)
        assert len(rx.events()) == 3  # each event once
        assert (await node.store.due_receipts()) == []
        await phone.stop()


async def test_failed_receipts_are_retried_and_redirects_not_followed(tmp_path: Path) -> None:
    async with receiving_node(
        tmp_path, Receiver(status=302, headers="Location: http://127.0.0.1:9/\r\n")
    ) as (rx, node):
        app: NewApp = await node.create_app("Demo", PKG)
        params = {**BASE, "registration_id": "ghost-only,x", "extra.callback": rx.url}
        params["extra.callback.type"] = "16"
        # no known target: refused, and nothing is reported for a refused send
        assert await call(code_of, app.app_secret, "/v3/message/regid", **params) == 20301
        phone = await Phone(node, app).start()
        params["registration_id"] = f"{phone.reg_id},ghost"
        assert await call(code_of, app.app_secret, "/v3/message/regid", **params) == 0
        await rx.wait(lambda: len(rx.requests) >= 2, timeout=10)  # retried after 1 s
        async with asyncio.timeout(5):
            while node.receipts.failed < 2:  # the sender has seen the second answer
                await asyncio.sleep(0.05)
        assert node.receipts.sent == 0  # a 302 is a failure
        assert all(p == "/receipts?k=1" for p, _, _ in rx.requests)  # never the redirect
        # the same receipts again: the same webhook message (Standard Webhooks), the same body
        first, again = rx.requests[0], rx.requests[1]
        assert first[1]["webhook-id"] == again[1]["webhook-id"] and first[2] == again[2]
        await phone.stop()


async def test_callbacks_to_private_addresses_never_connect(tmp_path: Path) -> None:
    async with (
        Receiver().serving() as canary,
        running_node(tmp_path / "d", receipt_interval_s=0.1, ack_timeout_s=0.5) as node,
    ):
        point_xmpush_at(node)
        app: NewApp = await node.create_app("Demo", PKG)
        phone = await Phone(node, app).start()
        sender = APISender(app.app_secret)
        urls = [
            canary.url,
            f"http://localhost:{canary.port}/",
            f"http://[::ffff:127.0.0.1]:{canary.port}/",
            f"http://0.0.0.0:{canary.port}/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
        ]
        for url in urls:
            await call(sender.send, message("x", callback=url), phone.reg_id, retry_times=1)
        await phone.wait_for(len(urls))
        await asyncio.sleep(1.0)
        assert canary.connections == 0
        assert node.receipts.sent == 0 and node.receipts.failed >= len(urls)
        await phone.stop()


async def test_callback_parameters_are_checked(tmp_path: Path) -> None:
    async with running_node(tmp_path / "d") as node:
        point_xmpush_at(node)
        app: NewApp = await node.create_app("Demo", PKG)
        phone = await Phone(node, app).start()
        base = {**BASE, "registration_id": phone.reg_id}
        cases: list[tuple[int, dict[str, str]]] = [
            (65038, {"extra.callback": "ftp://example.com/x"}),
            (65038, {"extra.callback": "not a url"}),
            (65038, {"extra.callback": "http://user:pw@example.com/"}),
            (65038, {"extra.callback": "http://example.com:99999/"}),
            (65037, {"extra.callback": "http://example.com/" + "a" * 600}),
            (65036, {"extra.callback": "http://example.com/", "extra.callback.param": "p" * 65}),
            (10017, {"extra.callback": "http://example.com/", "extra.callback.type": "x"}),
            (0, {"extra.callback": "https://example.com/cb", "extra.callback.type": "3"}),
        ]
        for expected, extra in cases:
            got = await call(code_of, app.app_secret, "/v3/message/regid", **base, **extra)
            assert got == expected, (extra, got)
        await phone.stop()


async def test_a_callback_host_that_cannot_be_encoded_fails_alone(tmp_path: Path) -> None:
    async with receiving_node(tmp_path) as (rx, node):
        app: NewApp = await node.create_app("Demo", PKG)
        phone = await Phone(node, app).start()
        for url in ("http://x..y/cb", f"http://{'a' * 64}.example/cb", rx.url):
            params = {**BASE, "registration_id": f"{phone.reg_id},ghost", "extra.callback": url}
            params["extra.callback.type"] = "16"
            assert await call(code_of, app.app_secret, "/v3/message/regid", **params) == 0
        await rx.wait(lambda: len(rx.events()) == 1)  # the others do not stop the receipts
        assert rx.events()[0]["targets"] == "ghost"
        async with asyncio.timeout(5):
            while node.receipts.failed < 2:  # both unencodable hosts count as failed attempts
                await asyncio.sleep(0.05)
        await phone.stop()


async def test_a_callback_host_written_in_unicode_gets_its_receipts(tmp_path: Path) -> None:
    async with receiving_node(tmp_path) as (rx, node):
        app: NewApp = await node.create_app("Demo", PKG)
        phone = await Phone(node, app).start()
        wide = "１２７.０.０.１"  # IDNA maps these digits to 127.0.0.1
        for url in (f"http://{wide}:{rx.port}/idn", rx.url):
            params = {**BASE, "registration_id": f"{phone.reg_id},ghost", "extra.callback": url}
            params["extra.callback.type"] = "16"
            assert await call(code_of, app.app_secret, "/v3/message/regid", **params) == 0
        await rx.wait(lambda: len(rx.requests) == 2)
        hosts = {path.split("?")[0]: headers["host"] for path, headers, _ in rx.requests}
        assert hosts == {"/idn": f"127.0.0.1:{rx.port}", "/receipts": f"127.0.0.1:{rx.port}"}
        await phone.stop()

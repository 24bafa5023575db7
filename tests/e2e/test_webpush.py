"""Web Push end to end: a browser's push client (its frames, as Firefox sends them) on the
gateway, application servers posting to push endpoints with pywebpush and raw HTTP.

The browser side here is a WebSocket client that speaks Firefox's frames and decrypts with
``http_ece``; test_firefox.py runs Firefox itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

import http_ece
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid
from pywebpush import WebPushException, webpush
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK

from tests.e2e.helpers import running_node
from tidings.node import Node


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def vapid_keys() -> tuple[Vapid, str]:
    """An application server's VAPID key pair, and its public key as a page gives it."""
    vapid = Vapid()
    vapid.generate_keys()
    raw = vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return vapid, b64(raw)


class Browser:
    """A browser's push client: one WebSocket, Firefox's frames, its own message keys."""

    def __init__(self, node: Node, uaid: str | None = None) -> None:
        self.url = f"ws://127.0.0.1:{node.gateway_port}/"
        self.uaid = uaid
        self.ws: ClientConnection | None = None
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def same_browser(self) -> Browser:
        """This browser on a new connection: its uaid and its message keys."""
        other = Browser.__new__(Browser)
        other.url, other.uaid, other.ws = self.url, self.uaid, None
        other.private, other.auth = self.private, self.auth
        return other

    async def connect(self) -> dict[str, Any]:
        self.ws = await connect(self.url, subprotocols=["push-notification"])  # type: ignore[list-item]
        hello: dict[str, Any] = {"messageType": "hello", "broadcasts": {}, "use_webpush": True}
        if self.uaid:
            hello["uaid"] = self.uaid
        reply = await self.call(hello)
        self.uaid = reply["uaid"]
        return reply

    async def call(self, frame: dict[str, Any]) -> dict[str, Any]:
        await self.send(frame)
        return await self.recv()

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            return json.loads(await self.ws.recv())

    async def nothing(self, wait: float = 0.3) -> None:
        with pytest.raises(TimeoutError):
            await self.recv(wait)

    async def subscribe(self, key: str | None = None) -> dict[str, Any]:
        """Register a channel; the subscription as a page hands it to its server."""
        channel_id = str(uuid.uuid4())
        frame = {"messageType": "register", "channelID": channel_id}
        if key is not None:
            frame["key"] = key
        reply = await self.call(frame)
        assert reply["status"] == 200, reply
        assert reply["channelID"] == channel_id
        public = self.private.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": reply["pushEndpoint"],
            "channelID": channel_id,
            "keys": {"p256dh": b64(public), "auth": b64(self.auth)},
        }

    def decrypt(self, note: dict[str, Any]) -> bytes:
        data = base64.urlsafe_b64decode(note["data"] + "=" * (-len(note["data"]) % 4))
        return http_ece.decrypt(
            data, private_key=self.private, auth_secret=self.auth, version="aes128gcm"
        )

    async def ack(self, note: dict[str, Any], code: int = 100) -> None:
        update = {"channelID": note["channelID"], "version": note["version"], "code": code}
        await self.send({"messageType": "ack", "updates": [update]})

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def push(sub: dict[str, Any], text: str, vapid: Vapid | None, **kw: Any) -> Any:
    """pywebpush, as an application server runs it (in a thread: it blocks)."""
    claims = {"sub": "mailto:ops@example.com"} if vapid is not None else None
    kw.setdefault("ttl", 600)  # pywebpush's default is 0: now or never
    return asyncio.to_thread(webpush, sub, text, vapid_private_key=vapid, vapid_claims=claims, **kw)


async def gone_offline(node: Node, key: str | None) -> tuple[Browser, dict[str, Any]]:
    """A browser that subscribed (with this application server key) and went offline."""
    browser = Browser(node)
    await browser.connect()
    sub = await browser.subscribe(key=key)
    await browser.close()
    return browser, sub


async def pending(node: Node, uaid: str) -> list[str]:
    return [m.version for m in await node.store.webpush_pending(uaid)]


@pytest.fixture
async def node(tmp_path: Path) -> Any:
    async with running_node(tmp_path / "data", webpush_pending_max=3) as n:
        yield n


async def test_browser_subscribes_gets_the_push_decrypts_it_and_acks(node: Node) -> None:
    vapid, public = vapid_keys()
    browser = Browser(node)
    hello = await browser.connect()
    assert hello["status"] == 200 and hello["use_webpush"] is True
    sub = await browser.subscribe(key=public)
    assert sub["endpoint"].startswith(f"http://127.0.0.1:{node.api_port}/wpush/")
    answer = await push(sub, "Hello, browser", vapid)
    assert answer.status_code == 201
    assert answer.headers["Location"].startswith(f"http://127.0.0.1:{node.api_port}/wpush/m/")
    note = await browser.recv()
    assert note["messageType"] == "notification"
    assert note["channelID"] == sub["channelID"]
    assert note["headers"] == {"encoding": "aes128gcm"}
    assert browser.decrypt(note) == b"Hello, browser"  # the body went through untouched
    assert await pending(node, browser.uaid or "") == [note["version"]]
    await browser.ack(note)
    async with asyncio.timeout(5):
        while await pending(node, browser.uaid or ""):
            await asyncio.sleep(0.02)
    await browser.close()


async def test_offline_browser_gets_what_waits_after_its_hello_once(node: Node) -> None:
    vapid, public = vapid_keys()
    browser, sub = await gone_offline(node, public)
    for text in ("one", "two"):
        assert (await push(sub, text, vapid)).status_code == 201
    again = browser.same_browser()
    hello = await again.connect()
    assert hello["uaid"] == browser.uaid  # echoed: the browser keeps its subscriptions
    notes = [await again.recv(), await again.recv()]
    assert [again.decrypt(n) for n in notes] == [b"one", b"two"]
    await again.ack(notes[0])
    async with asyncio.timeout(5):  # the ack is written (at least once: until then it may come)
        while len(await pending(node, browser.uaid or "")) != 1:
            await asyncio.sleep(0.02)
    await again.close()
    third = browser.same_browser()
    await third.connect()
    note = await third.recv()  # the unacked one comes again, the acked one does not
    assert third.decrypt(note) == b"two"
    await third.ack(note)
    await third.nothing()
    await third.close()


async def test_a_push_without_a_key_on_the_subscription_needs_no_vapid(node: Node) -> None:
    browser = Browser(node)
    await browser.connect()
    sub = await browser.subscribe()
    assert (await push(sub, "no key", None)).status_code == 201
    note = await browser.recv()
    assert browser.decrypt(note) == b"no key"
    async with httpx.AsyncClient() as http:  # a push without a body is a valid tickle
        answer = await http.post(sub["endpoint"], headers={"TTL": "60"})
    assert answer.status_code == 201
    tickle = await browser.recv()
    assert "data" not in tickle and "headers" not in tickle
    await browser.close()


async def test_topic_replaces_and_ttl_0_is_never_kept_and_delete_takes_back(node: Node) -> None:
    vapid, public = vapid_keys()
    browser, sub = await gone_offline(node, public)
    await push(sub, "old score", vapid, headers={"Topic": "score"})
    await push(sub, "new score", vapid, headers={"Topic": "score"})
    now_or_never = await push(sub, "gone", vapid, ttl=0)
    assert now_or_never.status_code == 201 and now_or_never.headers["TTL"] == "0"
    taken = await push(sub, "taken back", vapid)
    async with httpx.AsyncClient() as http:
        assert (await http.delete(taken.headers["Location"])).status_code == 204
        assert (await http.delete(taken.headers["Location"])).status_code == 404
    again = browser.same_browser()
    await again.connect()
    assert again.decrypt(await again.recv()) == b"new score"
    await again.nothing()
    await again.close()


async def test_pushes_that_are_refused(node: Node) -> None:
    vapid, public = vapid_keys()
    other, _ = vapid_keys()
    browser = Browser(node)
    await browser.connect()
    sub = await browser.subscribe(key=public)
    url = sub["endpoint"]
    signed = vapid.sign({"sub": "mailto:a@example.com", "aud": f"http://127.0.0.1:{node.api_port}"})
    good = {"TTL": "60", "Content-Encoding": "aes128gcm", **signed}
    async with httpx.AsyncClient() as http:

        async def post(headers: dict[str, str], body: bytes = b"x" * 100, to: str = url) -> Any:
            answer = await http.post(to, headers=headers, content=body)
            return answer.status_code, answer.json()["errno"]

        assert await post({k: v for k, v in good.items() if k != "TTL"}) == (400, 111)
        assert await post({**good, "TTL": "soon"}) == (400, 112)
        assert await post({**good, "Topic": "not a topic!"}) == (400, 112)
        assert await post({**good, "Urgency": "asap"}) == (400, 112)
        assert await post({**good, "Content-Encoding": "identity"}) == (400, 110)
        assert await post(good, b"x" * 4097) == (413, 104)
        assert await post({"TTL": "60", "Content-Encoding": "aes128gcm"}) == (401, 109)
        by_other = other.sign({"sub": "mailto:a@example.com", "aud": good_aud(node)})
        assert await post({**good, **by_other}) == (403, 109)
        wrong_aud = vapid.sign({"sub": "mailto:a@example.com", "aud": "https://push.example"})
        assert await post({**good, **wrong_aud}) == (401, 109)
        forged = dict(good)
        forged["Authorization"] = forged["Authorization"].replace("t=ey", "t=eY", 1)
        assert await post(forged) == (401, 109)
        assert await post(good, to=url + "x") == (410, 103)
        assert await post(good, to=url.rsplit("/", 1)[0] + "/" + "a" * 65) == (410, 103)
        for _ in range(3):  # the pending cap (3 here) then 429
            assert (await http.post(url, headers=good, content=b"x")).status_code == 201
        full = await http.post(url, headers=good, content=b"x")
        assert full.status_code == 429 and full.headers["Retry-After"] == "60"
        for _ in range(3):  # what came while connected
            assert (await browser.recv())["messageType"] == "notification"
        gone = await browser.call({"messageType": "unregister", "channelID": sub["channelID"]})
        assert gone["messageType"] == "unregister"
        assert await post(good) == (410, 103)  # unsubscribed: gone, and what waited with it
    assert await pending(node, browser.uaid or "") == []
    await browser.close()


def good_aud(node: Node) -> str:
    return f"http://127.0.0.1:{node.api_port}"


async def test_pywebpush_hears_gone_after_unsubscribe(node: Node) -> None:
    vapid, public = vapid_keys()
    browser = Browser(node)
    await browser.connect()
    sub = await browser.subscribe(key=public)
    reply = await browser.call({"messageType": "unregister", "channelID": sub["channelID"]})
    assert reply == {"messageType": "unregister", "channelID": sub["channelID"], "status": 200}
    with pytest.raises(WebPushException) as refused:
        await push(sub, "late", vapid)
    assert refused.value.response is not None and refused.value.response.status_code == 410
    await browser.close()


async def test_bad_browser_frames_get_clear_answers(node: Node) -> None:
    browser = Browser(node)
    await browser.connect()
    error = await browser.call({"messageType": "register", "channelID": "not-a-uuid"})
    assert error["messageType"] == "error" and "channelID" in error["reason"]
    channel_id = str(uuid.uuid4())
    refused = await browser.call({"messageType": "register", "channelID": channel_id, "key": "AAA"})
    assert refused["messageType"] == "register" and refused["status"] == 400
    error = await browser.call(
        {"messageType": "ack", "updates": [{"channelID": channel_id, "version": 5}]}
    )
    assert error["messageType"] == "error" and "version" in error["reason"]
    await browser.send({"messageType": "broadcast_subscribe", "broadcasts": {}})
    await browser.nothing()  # taken, and nothing to say
    sub = await browser.subscribe()  # the connection still works
    key_now = vapid_keys()[1]
    taken = await browser.call(
        {"messageType": "register", "channelID": sub["channelID"], "key": key_now}
    )
    assert taken["status"] == 409  # the same channel with another key
    shouted = await browser.call({"messageType": "register", "channelID": sub["channelID"].upper()})
    assert shouted["status"] == 200 and shouted["pushEndpoint"] == sub["endpoint"]  # one channel
    await browser.close()


async def test_an_unknown_uaid_is_replaced_and_a_new_connection_takes_over(node: Node) -> None:
    stranger = Browser(node, uaid="f" * 32)
    hello = await stranger.connect()
    assert hello["uaid"] != "f" * 32  # only identities this server issued are honoured
    await stranger.close()
    first = Browser(node)
    await first.connect()
    sub = await first.subscribe()
    second = first.same_browser()
    await second.connect()
    assert (await push(sub, "to the newest", None)).status_code == 201
    assert second.decrypt(await second.recv()) == b"to the newest"
    await first.close()
    await second.close()


async def test_a_connection_taken_over_is_closed_and_its_browser_gets_pushes_again(
    node: Node,
) -> None:
    first = Browser(node)
    await first.connect()
    sub = await first.subscribe()
    second = Browser(node, uaid=first.uaid)
    await second.connect()
    await second.close()  # the newer connection goes: the older one must not be left deaf
    with pytest.raises(ConnectionClosedOK):
        await first.recv()
    assert first.ws is not None and first.ws.close_code == 1000
    assert (await push(sub, "after the takeover", None)).status_code == 201
    await first.connect()  # the browser reconnects, as Firefox does
    assert first.decrypt(await first.recv()) == b"after the takeover"
    await first.close()


async def test_pushes_racing_an_unsubscribe_are_taken_or_gone_never_an_error(node: Node) -> None:
    browser = Browser(node)
    await browser.connect()
    sub = await browser.subscribe()
    headers = {"TTL": "60", "Content-Encoding": "aes128gcm"}
    async with httpx.AsyncClient() as http:

        async def post_some() -> list[int]:
            return [
                (await http.post(sub["endpoint"], headers=headers, content=b"x")).status_code
                for _ in range(10)
            ]

        racing = asyncio.gather(*[post_some() for _ in range(4)])
        await browser.send({"messageType": "unregister", "channelID": sub["channelID"]})
        answers = [code for batch in await racing for code in batch]
        while (await browser.recv())["messageType"] != "unregister":
            pass  # the pushes taken before it
        after = await http.post(sub["endpoint"], headers=headers, content=b"x")
    assert set(answers) <= {201, 410, 429}, answers
    assert after.status_code == 410
    assert await pending(node, browser.uaid or "") == []
    await browser.close()


async def test_an_ack_right_behind_a_hello_does_not_break_the_connection(node: Node) -> None:
    first = Browser(node)
    await first.connect()
    sub = await first.subscribe()
    await first.close()
    again = first.same_browser()
    again.ws = await connect(again.url, subprotocols=["push-notification"])  # type: ignore[list-item]
    # the hello of a known uaid takes a store read: the ack comes before it is answered
    await again.send({"messageType": "hello", "uaid": first.uaid, "use_webpush": True})
    stray = {"channelID": sub["channelID"], "version": "x" * 22, "code": 100}
    await again.send({"messageType": "ack", "updates": [stray]})
    assert (await again.recv())["uaid"] == first.uaid
    assert (await push(sub, "still here", None)).status_code == 201
    assert again.decrypt(await again.recv()) == b"still here"
    await again.close()


async def test_a_browser_gets_everything_that_waits_however_much_in_pages(tmp_path: Path) -> None:
    # 1,100 messages wait (11 full channels of the default cap would do the same); the browser
    # must get them all on this connection, and never more at once than its socket takes
    async with running_node(
        tmp_path / "data", webpush_pending_max=2000, send_buffer_bytes=300_000
    ) as node:
        browser, sub = await gone_offline(node, None)
        headers = {"TTL": "600", "Content-Encoding": "aes128gcm"}
        async with httpx.AsyncClient() as http:

            async def post_some(n: int, size: int) -> None:
                for _ in range(n):
                    answer = await http.post(sub["endpoint"], headers=headers, content=b"x" * size)
                    assert answer.status_code == 201

            await post_some(200, 4096)  # 1.1 MB of frames: more than the socket may hold
            await asyncio.gather(*[post_some(100, 10) for _ in range(9)])
        again = Browser(node, uaid=browser.uaid)
        await again.connect()
        versions = set()
        while len(versions) < 1100:
            note = await again.recv()
            assert note["messageType"] == "notification" and note["version"] not in versions
            versions.add(note["version"])
            await again.ack(note)
        await again.nothing()
        async with asyncio.timeout(5):
            while await pending(node, again.uaid or ""):
                await asyncio.sleep(0.05)
        await again.close()


async def test_a_ttl_too_long_to_read_is_cut_to_the_longest(node: Node) -> None:
    browser = Browser(node)
    await browser.connect()
    sub = await browser.subscribe()
    longest = str(node.settings.webpush_ttl_max_s)
    async with httpx.AsyncClient() as http:
        for ttl in ("9" * 13, "9" * 5000):  # delta-seconds (RFC 9111): too big means the most
            answer = await http.post(sub["endpoint"], headers={"TTL": ttl})
            assert answer.status_code == 201 and answer.headers["TTL"] == longest
    await browser.close()


async def test_a_push_sent_live_between_pages_is_not_sent_again(tmp_path: Path) -> None:
    async with running_node(tmp_path / "data", webpush_pending_max=1000) as node:
        browser, sub = await gone_offline(node, None)
        headers = {"TTL": "600", "Content-Encoding": "aes128gcm"}
        async with httpx.AsyncClient() as http:
            for _ in range(150):
                answer = await http.post(sub["endpoint"], headers=headers, content=b"x")
                assert answer.status_code == 201
            again = Browser(node, uaid=browser.uaid)
            await again.connect()
            first_page = [await again.recv() for _ in range(100)]
            answer = await http.post(sub["endpoint"], headers=headers, content=b"live")
            live = await again.recv()
            assert answer.headers["Location"].endswith("/" + live["version"])
        for note in first_page:  # the live one is not acked yet when the next page is read
            await again.ack(note)
        second_page = [await again.recv() for _ in range(50)]
        assert live["version"] not in {note["version"] for note in second_page}
        await again.nothing()
        await again.close()

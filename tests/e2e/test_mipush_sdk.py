"""Mi Push's own Python server SDK (xmpush-python) against a real node, to SDK devices."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from xmpush.APISender import APISender
from xmpush.APISubscribe import APISubscribe
from xmpush.base.APIError import APIError
from xmpush.base.APIMessage import PushMessage

from tests.e2e.helpers import Phone
from tidings.core.models import NewApp
from tidings.node import Node

PKG = "com.example.demo"


def message(title: str = "Hello", **extra: str) -> dict[str, Any]:
    msg = (
        PushMessage()
        .restricted_package_name(PKG)
        .title(title)
        .description("World")
        .pass_through(0)
        .notify_type(-1)
        .payload('{"k":1}')
        .extra({"notify_effect": "1", **extra})
    )
    return msg.message_dict()  # type: ignore[no-any-return]


async def call(fn: Any, *args: Any, **kw: Any) -> Any:
    """The SDK is blocking: run it on a thread while the node serves on the event loop."""
    return await asyncio.to_thread(fn, *args, **kw)


async def test_send_to_regid_delivers_every_field(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    msg = (
        PushMessage()
        .restricted_package_name(PKG)
        .title("Title")
        .description("Body")
        .pass_through(0)
        .notify_type(3)
        .notify_id(7)
        .payload("data%20here")
        .extra({"notify_effect": "2", "intent_uri": "app://x", "my_key": "my value"})
    )
    r = await call(APISender(app.app_secret).send, msg.message_dict(), phone.reg_id, retry_times=1)
    assert r.code == 0 and r.result == "ok" and len(r.data.id) == 22
    assert r.info == "Received push messages for 1 REGID"
    [got] = await phone.wait_for(1)
    assert got.id == r.data.id and got.seq == 1
    assert (got.title, got.description, got.payload) == ("Title", "Body", "data%20here")
    assert (got.notify_type, got.notify_id, got.pass_through) == (3, 7, 0)
    assert got.extra == {"notify_effect": "2", "intent_uri": "app://x", "my_key": "my value"}
    await phone.stop()


async def test_every_target_type_through_the_sdk(node: Node, app: NewApp) -> None:
    a = await Phone(node, app, aliases=["alice"], account="acct-1", topics=["news"]).start()
    b = await Phone(node, app, account="acct-1").start()
    sender = APISender(app.app_secret)
    r_alias = await call(sender.send_to_alias, message("alias"), "alice", retry_times=1)
    r_acct = await call(sender.send_to_user_account, message("account"), "acct-1", retry_times=1)
    r_topic = await call(sender.broadcast, message("topic"), "news", retry_times=1)
    r_all = await call(sender.broadcast_all, message("all"), retry_times=1)
    await a.wait_for(4)
    await b.wait_for(2)
    assert [m.title for m in a.messages] == ["alias", "account", "topic", "all"]
    assert [m.title for m in b.messages] == ["account", "all"]
    assert a.ids() == [r.data.id for r in (r_alias, r_acct, r_topic, r_all)]
    pass_msg = (
        PushMessage().restricted_package_name(PKG).pass_through(1).payload("raw").message_dict()
    )
    await call(sender.send, pass_msg, b.reg_id, retry_times=1)
    [*_, last] = await b.wait_for(3)
    assert (last.pass_through, last.payload) == (1, "raw")
    for p in (a, b):
        await p.stop()


@pytest.mark.parametrize(
    ("op", "expected"),
    [("UNION", {"d1", "d2", "d3"}), ("INTERSECTION", {"d2"}), ("EXCEPT", {"d1"})],
)
async def test_multi_topic_operations(node: Node, app: NewApp, op: str, expected: set[str]) -> None:
    phones = {
        "d1": await Phone(node, app, topics=["a"]).start(),
        "d2": await Phone(node, app, topics=["a", "b"]).start(),
        "d3": await Phone(node, app, topics=["b", "c"]).start(),
    }
    sender = APISender(app.app_secret)
    r = await call(sender.multi_broadcast, message(op), ["a", "b"], op, retry_times=1)
    assert r.code == 0
    await call(sender.broadcast_all, message("marker"), retry_times=1)
    for p in phones.values():  # every device sees the marker, so the topic message has settled
        await p.wait(lambda p=p: any(m.title == "marker" for m in p.messages))
    got = {name for name, p in phones.items() if any(m.title == op for m in p.messages)}
    assert got == expected
    for p in phones.values():
        await p.stop()


async def test_server_side_topic_subscription(node: Node, app: NewApp) -> None:
    a = await Phone(node, app, aliases=["ann"]).start()
    b = await Phone(node, app).start()
    sub, sender = APISubscribe(app.app_secret), APISender(app.app_secret)
    r = await call(sub.subscribe_topic, b.reg_id, "deals", retry_times=1)
    assert r.code == 0
    await call(sub.subscribe_topic_alias, "ann", "deals", retry_times=1)
    await call(sender.broadcast, message("deal 1"), "deals", retry_times=1)
    await a.wait_for(1)
    await b.wait_for(1)
    await call(sub.unsubscribe_topic, b.reg_id, "deals", retry_times=1)
    await call(sub.unsubscribe_topic_alias, "ann", "deals", retry_times=1)
    await call(sender.broadcast, message("deal 2"), "deals", retry_times=1)
    await call(sender.broadcast_all, message("end"), retry_times=1)
    await a.wait_for(2)
    await b.wait_for(2)
    assert [m.title for m in a.messages] == ["deal 1", "end"]
    assert [m.title for m in b.messages] == ["deal 1", "end"]
    for p in (a, b):
        await p.stop()


def _post(secret: str, path: str, **params: Any) -> Any:
    """One request through the SDK's own request path, raising APIError with the server's code."""
    return APISender(secret).http_post([path], **params)


def code_of(secret: str, path: str, **params: Any) -> int:
    try:
        r = _post(secret, path, **params)
    except APIError as err:
        return int(err.error_code)
    return int(r.code)


BASE = {"restricted_package_name": PKG, "title": "t", "description": "d", "payload": "p"}


async def test_documented_error_codes(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    s, reg = app.app_secret, phone.reg_id
    cases: list[tuple[int, str, dict[str, Any]]] = [
        (21301, "/v3/message/regid", {"registration_id": reg, "secret": "wrong"}),
        (
            22022,
            "/v3/message/regid",
            {**BASE, "restricted_package_name": "com.other.app", "registration_id": reg},
        ),
        (10016, "/v3/message/regid", {"title": "t", "description": "d", "registration_id": reg}),
        (20301, "/v3/message/regid", {**BASE, "registration_id": "unknown1,unknown2"}),
        (10017, "/v3/message/regid", {**BASE, "registration_id": ",".join(["x"] * 1001)}),
        (65009, "/v3/message/regid", {**BASE, "payload": "x" * 4096, "registration_id": reg}),
        (10017, "/v3/message/regid", {**BASE, "title": "x" * 50, "registration_id": reg}),
        (10017, "/v3/message/regid", {**BASE, "description": "x" * 128, "registration_id": reg}),
        (10016, "/v3/message/regid", {**BASE, "title": " ", "registration_id": reg}),
        (
            10016,
            "/v3/message/regid",
            {**BASE, "pass_through": "1", "payload": "", "registration_id": reg},
        ),
        (10017, "/v3/message/regid", {**BASE, "time_to_live": "-1", "registration_id": reg}),
        (
            10017,
            "/v3/message/regid",
            {**BASE, "time_to_live": str(11 * 86400000), "registration_id": reg},
        ),
        (10017, "/v3/message/regid", {**BASE, "time_to_live": "soon", "registration_id": reg}),
        (10017, "/v3/message/regid", {**BASE, "notify_id": "-3", "registration_id": reg}),
        (10017, "/v3/message/regid", {**BASE, "pass_through": "2", "registration_id": reg}),
        (
            65014,
            "/v3/message/regid",
            {**BASE, "registration_id": reg, **{f"extra.k{i}": "v" for i in range(11)}},
        ),
        (65015, "/v3/message/regid", {**BASE, "registration_id": reg, "extra.k": "v" * 1025}),
        (10017, "/v3/message/regid", {**BASE, "registration_id": reg, "extra.jobkey": "_bad"}),
        (10016, "/v3/message/regid", {**BASE}),
        (65008, "/v3/message/alias", {**BASE, "alias": "a" * 129}),
        (20301, "/v3/message/alias", {**BASE, "alias": "nobody"}),
        (65017, "/v2/message/user_account", {**BASE, "user_account": "u" * 129}),
        (65013, "/v3/message/topic", {**BASE, "topic": ""}),
        (65010, "/v3/message/topic", {**BASE, "topic": "t" * 129}),
        (
            65035,
            "/v3/message/multi_topic",
            {**BASE, "topics": ";$;".join("abcdef"), "topic_op": "UNION"},
        ),
        (10017, "/v3/message/multi_topic", {**BASE, "topics": "a;$;b", "topic_op": "XOR"}),
        (65013, "/v3/message/multi_topic", {**BASE, "topics": "a;$;", "topic_op": "UNION"}),
        (22022, "/v2/message/all", {**BASE, "restricted_package_name": f"{PKG},com.b.c"}),
        (10017, "/v3/message/all", {**BASE, "time_to_send": "99999999999999"}),
        (20215, "/v2/topic/subscribe", {"registration_id": "nope", "topic": "x"}),
        (65013, "/v2/topic/subscribe", {"registration_id": reg}),
        # no text may hold U+0000 (PostgreSQL cannot keep it; the same on every engine)
        (10017, "/v3/message/alias", {**BASE, "alias": "al\x00ice"}),
        (10017, "/v3/message/topic", {**BASE, "topic": "ne\x00ws"}),
        (10017, "/v3/message/regid", {**BASE, "registration_id": reg, "extra.k": "a\x00"}),
        # integers are ASCII decimal digits, nothing int() would also take
        *(
            (10017, "/v3/message/regid", {**BASE, "notify_id": v, "registration_id": reg})
            for v in ("1_000", "\u0663", "+5", " 5 ", "5.0", "0x10")
        ),
        (10017, "/v3/message/regid", {**BASE, "registration_id": reg, "extra.callback.type": "-1"}),
    ]
    for expected, path, params in cases:
        secret = params.pop("secret", s)
        got = await call(code_of, secret, path, **params)
        assert got == expected, (path, params, got)
    assert (await node.store.counts())["messages"] == 0  # nothing refused was stored
    assert phone.messages == []
    await phone.stop()


async def test_bad_regids_are_reported_and_good_ones_served(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    r = await call(
        _post,
        app.app_secret,
        "/v3/message/regid",
        **BASE,
        registration_id=f"{phone.reg_id},gone-1,",
    )
    assert r.code == 0 and r.data.bad_regids == "gone-1"
    await phone.wait_for(1)
    await phone.stop()

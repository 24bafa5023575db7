"""Device tools, presence, validation and feedback through Mi Push's SDK (APITools)."""

from __future__ import annotations

from typing import Any

from xmpush.APISender import APISender
from xmpush.APITools import APITools

from tests.e2e.helpers import Phone, RawDevice
from tests.e2e.test_mipush_sdk import BASE, PKG, call, code_of, message
from tests.e2e.test_trace import get_code
from tidings.core.models import NewApp
from tidings.node import Node


async def test_device_lists_and_presence(node: Node, app: NewApp) -> None:
    a = await Phone(node, app, aliases=["alice", "al"], topics=["news"], account="acct").start()
    b = await Phone(node, app).start()
    tools = APITools(app.app_secret)
    aliases = await call(tools.query_device_aliases, PKG, a.reg_id, retry_times=1)
    assert sorted(aliases.data.list) == ["al", "alice"]
    topics = await call(tools.query_device_topics, PKG, a.reg_id, retry_times=1)
    assert topics.data.list == ["news"]
    accounts = await call(tools.query_device_user_accounts, PKG, a.reg_id, retry_times=1)
    assert accounts.data.list == ["acct"]
    assert (
        await call(tools.query_device_user_accounts, PKG, b.reg_id, retry_times=1)
    ).data.list == []
    one = await call(tools.query_device_presence, PKG, a.reg_id, retry_times=1)
    assert one.data.registration_id == a.reg_id and one.data.online is True
    await b.stop()
    many = await call(tools.query_device_presence, PKG, [a.reg_id, b.reg_id, "x"], retry_times=1)
    assert [(p["registration_id"], p["online"]) for p in many.data.list] == [
        (a.reg_id, True),
        (b.reg_id, False),
    ]
    assert many.data.bad_regids == "x"
    await a.stop()


async def test_validation_and_feedback(node: Node, app: NewApp) -> None:
    b = await Phone(node, app).start()
    tools, sender = APITools(app.app_secret), APISender(app.app_secret)
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        gone = (await dev.register(app))["reg_id"]
        await dev.send(
            {
                "messageType": "app_command",
                "req": "1",
                "reg_id": gone,
                "command": "set-alias",
                "args": ["alice"],
            }
        )
        await dev.recv()
        v = await call(tools.validate_reg_ids, f"{gone},nope,{b.reg_id}", retry_times=1)
        assert v.data.valid == [gone, b.reg_id] and v.data.invalid == ["nope"]
        await dev.send({"messageType": "app_unregister", "req": "2", "reg_id": gone})
        assert (await dev.recv())["messageType"] == "app_unregister"
    await call(sender.send, message(), f"{b.reg_id},ghost", retry_times=1)
    # every alias unknown: refused with 20301, and still reported as invalid
    assert await call(code_of, app.app_secret, "/v3/message/alias", **BASE, alias="alice,bob") == (
        20301
    )
    r = await call(tools.query_invalid_reg_ids, retry_times=1)
    assert sorted(r.data.list) == sorted([gone, "ghost"])
    assert (await call(tools.query_invalid_reg_ids, retry_times=1)).data.list == []
    r = await call(tools.query_invalid_aliases, retry_times=1)
    assert sorted(r.data.list) == ["alice", "bob"]
    v = await call(tools.validate_reg_ids, gone, retry_times=1)
    assert v.data.invalid == [gone]
    await b.stop()


async def test_device_tool_error_codes(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    s, reg = app.app_secret, phone.reg_id
    other = await node.create_app("Other", "com.example.other")
    cases: list[tuple[int, str, str, dict[str, Any]]] = [
        (10016, s, "/v1/alias/all", {"registration_id": reg}),
        (10016, s, "/v1/topic/all", {"restricted_package_name": PKG}),
        (22022, s, "/v1/account/all", {"restricted_package_name": "a.b", "registration_id": reg}),
        (10029, s, "/v1/alias/all", {"restricted_package_name": PKG, "registration_id": "nope"}),
        (
            10029,
            other.app_secret,
            "/v1/alias/all",
            {"restricted_package_name": "com.example.other", "registration_id": reg},
        ),
        (10029, s, "/v1/regid/presence", {"restricted_package_name": PKG, "registration_id": "x"}),
        (10029, s, "/v2/regid/presence", {"restricted_package_name": PKG, "registration_id": "x"}),
        (10016, s, "/v2/regid/presence", {"restricted_package_name": PKG}),
        (10016, s, "/v1/validation/regids", {}),
        (10017, s, "/v1/validation/regids", {"registration_ids": "r" * 257}),
        (21301, "wrong", "/v1/feedback/fetch_invalid_regids", {}),
    ]
    for expected, secret, path, params in cases:
        got = await call(get_code, secret, path, **params)
        assert got == expected, (path, params, got)
    await phone.stop()

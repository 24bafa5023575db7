"""Revoking shown notifications: the revoke frame reaches the targeted connected devices."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.helpers import Phone
from tests.e2e.test_mipush_sdk import PKG, _post, call, code_of
from tidings.core.models import NewApp
from tidings.node import Node


async def test_revoke_by_every_target_kind(node: Node, app: NewApp) -> None:
    a = await Phone(node, app, aliases=["alice"], account="acct", topics=["news"]).start()
    b = await Phone(node, app, topics=["sport"]).start()
    s = app.app_secret
    base = {"restricted_package_name": PKG}
    r = await call(
        _post, s, "/v1/message/regid/revoke", **base, registration_ids=f"{a.reg_id},x", notify_id=1
    )
    assert r.code == 0 and r.data.bad_regids == "x"
    await call(_post, s, "/v1/message/alias/revoke", **base, aliases="alice", notify_id=2)
    await call(
        _post, s, "/v1/message/user_account/revoke", **base, user_accounts="acct", notify_id=3
    )
    await call(_post, s, "/v1/message/topic/revoke", **base, topic="news", notify_id=4)
    await call(
        _post,
        s,
        "/v1/message/multi_topic/revoke",
        **base,
        topics="news;$;sport",
        topic_op="UNION",
        notify_id=5,
    )
    await a.wait(lambda: len(a.revokes) >= 5)
    await b.wait(lambda: len(b.revokes) >= 1)
    await asyncio.sleep(0.2)
    assert [r.notify_id for r in a.revokes] == [1, 2, 3, 4, 5]
    assert [r.notify_id for r in b.revokes] == [5]
    assert {r.app_id for r in a.revokes} == {app.app.app_id}
    for p in (a, b):
        await p.stop()


async def test_revoke_error_codes(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    base = {"restricted_package_name": PKG, "notify_id": "1"}
    cases: list[tuple[int, str, dict[str, Any]]] = [
        (10016, "/v1/message/regid/revoke", {"registration_ids": phone.reg_id, "notify_id": "1"}),
        (22022, "/v1/message/regid/revoke", {**base, "restricted_package_name": "a.b"}),
        (
            10016,
            "/v1/message/regid/revoke",
            {"restricted_package_name": PKG, "registration_ids": "r"},
        ),
        (10017, "/v1/message/regid/revoke", {**base, "registration_ids": "r", "notify_id": "-1"}),
        (10016, "/v1/message/alias/revoke", {**base}),
        (20301, "/v1/message/alias/revoke", {**base, "aliases": "nobody"}),
        (20301, "/v1/message/user_account/revoke", {**base, "user_accounts": "nobody"}),
        (65013, "/v1/message/topic/revoke", {**base}),
        (10017, "/v1/message/multi_topic/revoke", {**base, "topics": "a;$;b", "topic_op": "X"}),
    ]
    for expected, path, params in cases:
        got = await call(code_of, app.app_secret, path, **params)
        assert got == expected, (path, params, got)
    assert phone.revokes == []
    await phone.stop()

"""Content review end to end: rules decide, held messages wait for a reviewer, all is audited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import Phone, running_node
from tidings.compliance import moderation
from tidings.core.models import NewApp
from tidings.node import Node

TOKEN = "operator-token-for-tests"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "data", ack_timeout_s=0.5, admin_token=TOKEN) as n:
        yield n


async def post_many(node: Node, app: NewApp, path: str, forms: list[dict[str, Any]]) -> list[dict]:  # type: ignore[type-arg]
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=node.urls()["api"], timeout=30) as http:

        async def one(form: dict[str, Any]) -> dict:  # type: ignore[type-arg]
            async with sem:
                r = await http.post(
                    path,
                    data={"restricted_package_name": app.app.package, "description": "d", **form},
                    headers={"Authorization": f"key={app.app_secret}"},
                )
            return dict(r.json())

        return await asyncio.gather(*(one(f) for f in forms))


def admin(node: Node, token: str = TOKEN) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=node.urls()["api"], headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def test_held_messages_wait_for_approval(node: Node) -> None:
    app = await node.create_app("Demo", "com.example.demo")
    await moderation.add_rule(node.control, "term", "promo", app.app.app_id, "hold")
    phone = await Phone(node, app).start()
    forms = [
        {"registration_id": phone.reg_id, "title": f"PROMO {i}", "description": "d"}
        for i in range(1000)
    ]
    answers = await post_many(node, app, "/v3/message/regid", forms)
    assert all(a["code"] == 0 and a["data"]["review"] == "held" for a in answers)
    assert all(
        a["info"] == "Held for review: blocked_term:" + a["info"].split(":")[-1] for a in answers
    )
    ids = [a["data"]["id"] for a in answers]
    await asyncio.sleep(0.5)
    assert phone.messages == []  # 0 of 1,000 delivered before approval
    assert (await node.store.counts())["messages"] == 0

    async with admin(node) as http:
        queue = (await http.get("/admin/review/queue", params={"limit": 1000})).json()["held"]
        assert sorted(q["msg_id"] for q in queue) == sorted(ids)
        assert queue[0]["body"]["title"].startswith("PROMO")
        for msg_id in ids[:3]:
            r = await http.post(f"/admin/review/{msg_id}/approve", json={"actor": "ann"})
            assert r.json()["message"]["status"] == "approved"
        r = await http.post(f"/admin/review/{ids[3]}/reject", json={"reason": "spam"})
        assert r.json()["message"]["status"] == "rejected"
        again = await http.post(f"/admin/review/{ids[0]}/approve")
        assert again.status_code == 409  # decided already
        assert (await http.post("/admin/review/nope/approve")).status_code == 404  # never held
        shown = (await http.get(f"/admin/review/{ids[0]}")).json()
        assert [(d["decision"], d["actor"]) for d in shown["decisions"]] == [
            ("hold", "rules"),
            ("approved", "ann"),
        ]
    await phone.wait_for(3)
    await asyncio.sleep(0.3)
    assert sorted(phone.ids()) == sorted(ids[:3])
    for msg_id in ids[4:8]:  # every decision is audited
        assert [d["decision"] for d in await node.store.review_decisions(msg_id)] == ["hold"]
    assert [d["decision"] for d in await node.store.review_decisions(ids[3])] == [
        "hold",
        "rejected",
    ]
    await phone.stop()


async def test_rejected_messages_get_an_error_and_nothing_is_stored(node: Node) -> None:
    app = await node.create_app("Demo", "com.example.demo")
    rule = await moderation.add_rule(node.control, "term", "casino")  # global, reject
    await moderation.add_rule(node.control, "link_deny", "evil.example")
    phone = await Phone(node, app).start()
    (a, b, c) = await post_many(
        node,
        app,
        "/v3/message/regid",
        [
            {"registration_id": phone.reg_id, "title": "Сasino night"},  # Cyrillic С
            {
                "registration_id": phone.reg_id,
                "title": "hi",
                "extra.web_uri": "https://evil.example",
            },
            {"registration_id": phone.reg_id, "title": "fine"},
        ],
    )
    assert (a["code"], a["reason"]) == (26010, f"content rejected: blocked_term:{rule.rule_id}")
    assert b["code"] == 26010 and "link_denied" in b["reason"]
    assert c["code"] == 0
    await phone.wait_for(1)
    assert phone.ids() == [c["data"]["id"]]
    assert (await node.store.counts())["messages"] == 1
    assert [d["decision"] for d in await node.store.review_decisions(c["data"]["id"])] == ["allow"]
    # rules change without a restart, within a second
    assert await node.store.remove_review_rule(rule.rule_id)
    await asyncio.sleep(moderation.RULES_TTL_S)
    form = {"registration_id": phone.reg_id, "title": "casino"}
    (d,) = await post_many(node, app, "/v3/message/regid", [form])
    assert d["code"] == 0
    await phone.stop()


async def test_held_broadcast_and_expiry_before_approval(node: Node) -> None:
    app = await node.create_app("Demo", "com.example.demo")
    await moderation.add_rule(node.control, "audience", "0", app.app.app_id)
    phone = await Phone(node, app, topics=["news"]).start()
    (big, short) = await post_many(
        node,
        app,
        "/v3/message/topic",
        [
            {"topic": "news", "title": "to all"},
            {"topic": "news", "title": "soon", "time_to_live": "300"},
        ],
    )
    assert big["data"]["review"] == "held" and "audience_over_limit" in big["info"]
    await asyncio.sleep(0.4)
    async with admin(node) as http:
        r = await http.post(f"/admin/review/{short['data']['id']}/approve")
        assert r.json()["message"]["status"] == "expired"  # TTL counts from acceptance
        r = await http.post(f"/admin/review/{big['data']['id']}/approve")
        assert r.json()["message"]["status"] == "approved"
    await phone.wait_for(1)
    await asyncio.sleep(0.3)
    assert phone.ids() == [big["data"]["id"]]
    await phone.stop()


async def test_admin_endpoints_need_the_token(node: Node, tmp_path: Path) -> None:
    async with admin(node, "wrong") as http:
        assert (await http.get("/admin/review/queue")).status_code == 401
    async with httpx.AsyncClient(base_url=node.urls()["api"]) as http:
        assert (await http.get("/admin/review/queue")).status_code == 401
    async with running_node(tmp_path / "other") as plain, admin(plain) as http:  # no token
        assert (await http.get("/admin/review/queue")).status_code == 404


async def test_a_scheduled_send_approved_early_waits_for_its_time(node: Node) -> None:
    app = await node.create_app("Demo", "com.example.demo")
    await moderation.add_rule(node.control, "term", "promo", app.app.app_id, "hold")
    phone = await Phone(node, app, topics=["news"]).start()
    at = node.store.clock.now_ms() + 1500
    forms = [
        {"registration_id": phone.reg_id, "title": "PROMO one", "time_to_send": at},
        {"topic": "news", "title": "PROMO all", "time_to_send": at},
    ]
    answers = await post_many(node, app, "/v3/message/regid", forms[:1])
    answers += await post_many(node, app, "/v2/message/topic", forms[1:])
    ids = [a["data"]["id"] for a in answers]
    async with admin(node) as http:
        for msg_id in ids:  # approved long before its time_to_send
            assert (await http.post(f"/admin/review/{msg_id}/approve")).status_code == 200
    assert all([await node.store.job_exists(app.app.app_id, i) for i in ids])
    await asyncio.sleep(0.5)
    assert phone.messages == []
    await phone.wait_for(2, timeout=5)
    assert sorted(phone.ids()) == sorted(ids) and node.store.clock.now_ms() >= at
    await phone.stop()

"""Consent gating end to end: a gated app, real SDK devices, real sends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.helpers import Phone
from tests.e2e.test_delivery import send
from tidings.compliance import consent
from tidings.node import Node


async def _send_many(node: Node, secret: str, package: str, reg_id: str, n: int) -> list[str]:
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=node.urls()["api"], timeout=30) as http:

        async def one(i: int) -> str:
            async with sem:
                r = await http.post(
                    "/v3/message/regid",
                    data={
                        "registration_id": reg_id,
                        "restricted_package_name": package,
                        "title": f"t{i}",
                        "description": "d",
                    },
                    headers={"Authorization": f"key={secret}"},
                )
            body = r.json()
            assert body["code"] == 0, body
            return str(body["data"]["id"])

        return await asyncio.gather(*(one(i) for i in range(n)))


async def test_gated_app_needs_consent_then_withdrawal_stops_everything(node: Node) -> None:
    app = await node.create_app("Gated", "com.example.gated")
    await consent.add_policy(node.store, app.app.app_id, "v1", "https://example.com/privacy/1")
    phone = await Phone(node, app, topics=["news"]).start()  # registered, no consent yet
    first = await send(node, app, "regid", phone.reg_id, title="before consent")
    await send(node, app, "topic", "news", title="broadcast before consent")
    assert await node.store.message_counters(first) == {"filtered_consent": 1}

    result = await phone.client.agree(app.app.app_id, "v1")
    assert (result.code, result.agreed, result.version) == (0, True, "v1")
    after = await send(node, app, "regid", phone.reg_id, title="after consent")
    topic = await send(node, app, "topic", "news", title="broadcast after consent")
    await phone.wait_for(2)
    assert sorted(phone.ids()) == sorted([after, topic])

    result = await phone.client.withdraw(app.app.app_id)
    assert (result.code, result.agreed) == (0, False)
    ids = await _send_many(node, app.app_secret, app.app.package, phone.reg_id, 1000)
    await send(node, app, "topic", "news", title="broadcast after withdrawal")
    await asyncio.sleep(0.5)
    assert len(phone.messages) == 2  # 0 of the 1,000 arrived
    stats = [await node.store.message_counters(i) for i in ids[:5] + ids[-5:]]
    assert all(s == {"filtered_consent": 1} for s in stats)

    records = await consent.history(node.store, app.app.app_id, phone.reg_id)
    assert [(r.action, r.source) for r in records] == [("agreed", "sdk"), ("withdrawn", "sdk")]
    assert await consent.verify(node.store) == []
    await phone.stop()


async def test_consent_given_at_registration_is_recorded(node: Node, tmp_path: Path) -> None:
    app = await node.create_app("Gated", "com.example.gated", "v3")
    state = tmp_path / "phone.json"
    phone = await Phone(node, app, state=state, consent_version="v3").start()
    msg = await send(node, app, "regid", phone.reg_id)
    await phone.wait_for(1)
    assert phone.ids() == [msg]
    await phone.stop()
    again = await Phone(node, app, state=state, consent_version="v3").start()
    assert again.reg_id == phone.reg_id  # same version: no new record
    (rec,) = await consent.history(node.store, app.app.app_id, again.reg_id)
    assert (rec.action, rec.policy_version, rec.source) == ("agreed", "v3", "sdk")
    await again.stop()

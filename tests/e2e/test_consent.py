"""Consent gating end to end: a gated app, real SDK devices, real sends."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import psycopg

from tests.e2e.helpers import Phone, RawDevice, running_node
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


async def test_a_new_policy_version_stops_redelivery_too(node: Node) -> None:
    """Published by another process (the CLI), so the gateway is not told: what is in flight
    to a device whose consent no longer holds is not sent again (inbox or log)."""
    app = await node.create_app("Gated", "com.example.gated", "v1")
    async with RawDevice.connect(node) as dev:
        await dev.hello()
        answer = await dev.register(
            app, consent={"version": "v1"}, features=["log"]
        )  # takes broadcasts from the log too
        reg = answer["reg_id"]
        await send(node, app, "regid", reg, title="unicast")
        await send(node, app, "all", title="broadcast")
        got = {(await dev.recv())["message"]["title"] for _ in range(2)}
        assert got == {"unicast", "broadcast"}  # and not acked
        again = {(await dev.recv(timeout=3))["message"]["title"] for _ in range(2)}
        assert again == got  # ack_timeout_s is 0.5: both come again while consent holds
        await consent.add_policy(node.store, app.app.app_id, "v2", "https://example.com/p/2")
        loop = asyncio.get_running_loop()
        changed, arrivals = loop.time(), []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(4):
                while True:
                    await dev.recv(timeout=4)
                    arrivals.append(loop.time() - changed)
        # what was on its way when the policy changed may arrive; nothing comes again after
        assert all(t < 1.0 for t in arrivals), arrivals


async def test_a_send_racing_a_withdrawal_leaves_nothing_queued_on_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    """On PostgreSQL sends and the withdrawal run in parallel: a send either sees the
    withdrawal or its rows are dropped by it (20 trials; unlocked, 3-4 of 20 kept rows)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    async with running_node(tmp_path / "unused", database_url=pg_url, ack_timeout_s=1) as node:
        app = await node.create_app("Gated", "com.example.gated", "v1")
        for _ in range(20):
            async with RawDevice.connect(node) as dev:
                await dev.hello()
                reg = (await dev.register(app, consent={"version": "v1"}))["reg_id"]
                sends = asyncio.ensure_future(
                    asyncio.gather(
                        *(send(node, app, "regid", reg, title=f"m{i}") for i in range(8)),
                        return_exceptions=True,
                    )
                )
                await asyncio.sleep(0.005)
                await dev.send(
                    {"messageType": "consent", "req": "w", "reg_id": reg, "agreed": False}
                )
                await sends
                while (await dev.recv())["messageType"] != "consent":
                    pass  # notifications sent before it may come first
            queued = await node.store.engine.read(
                lambda tx, r: tx.one("SELECT count(*) FROM inbox WHERE reg_id = ?", (r,))[0], reg
            )
            assert queued == 0  # (pending() would say so anyway: it checks consent first)

"""Terms and account states end to end: operators act through the API, senders feel it at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.helpers import Phone, RawDevice, running_node
from tests.e2e.mgmt import PASSWORD, Dev, api, create_app, send_to, sign_up
from tests.e2e.test_management import assert_error
from tidings.clock import ManualClock
from tidings.core.models import NewApp
from tidings.node import Node

OP = "op-secret"
DAY = 86_400_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Node]:
    async with running_node(
        tmp_path / "data", clock=clock, admin_token=OP, terms_grace_days=2.0
    ) as n:
        yield n


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


async def setup(node: Node) -> tuple[Dev, NewApp, Phone]:
    dev = await sign_up(node)
    app = await create_app(node, dev)
    phone = await Phone(node, app).start()
    return dev, app, phone


async def code(node: Node, app: NewApp, phone: Phone) -> tuple[int, str]:
    r = await send_to(node, app.app_secret, app.app.package, phone.reg_id)
    return int(r["code"]), str(r.get("reason", ""))


async def test_terms_block_sending_after_grace_until_accepted(
    node: Node, clock: ManualClock
) -> None:
    dev, app, phone = await setup(node)
    try:
        now = clock.now_ms()
        async with api(node, OP) as op, dev.client(node) as c:
            body = {"version": "2026-1", "text": "Be nice.", "effective_at": iso(now + DAY)}
            assert_error(
                await op.post("/terms", json={**body, "effective_at": iso(now - DAY)}),
                400,
                "effective_before_publication",
            )
            assert_error(await c.post("/terms", json=body), 403, "forbidden")
            assert (await op.post("/terms", json=body)).status_code == 201
            assert_error(await op.post("/terms", json=body), 409, "version_exists")
            listed = (await c.get("/terms")).json()["terms"]
            assert listed == [
                {
                    "version": "2026-1",
                    "published_at": now,
                    "effective_at": now + DAY,
                    "accept_by": now + 3 * DAY,
                    "in_force": False,
                    "accepted_at": None,
                }
            ]
            assert (await c.get("/terms/2026-1")).json()["terms"]["body"] == "Be nice."
            assert (await code(node, app, phone))[0] == 0
            clock.advance(2 * DAY)  # in force, within the grace period
            assert (await code(node, app, phone))[0] == 0
            clock.advance(DAY)
            blocked, reason = await code(node, app, phone)
            assert blocked == 10036 and "2026-1" in reason
            assert_error(await c.post("/terms/nope/acceptance"), 404, "not_found")
            r = await c.post("/terms/2026-1/acceptance")
            assert r.status_code == 201 and r.json()["acceptance"]["source"] == "127.0.0.1"
            assert_error(await c.post("/terms/2026-1/acceptance"), 409, "already_accepted")
            assert (await code(node, app, phone))[0] == 0
            # a new version: sending goes on during its grace period, then stops
            r = await op.post("/terms", json={"version": "2026-2", "text": "Be nicer."})
            assert r.status_code == 201
            assert (await code(node, app, phone))[0] == 0
            clock.advance(2 * DAY)
            blocked, reason = await code(node, app, phone)
            assert blocked == 10036 and "2026-2" in reason
            await c.post("/terms/2026-2/acceptance")
            assert (await code(node, app, phone))[0] == 0
            mine = (await c.get("/acceptances")).json()["acceptances"]
            assert [a["version"] for a in mine] == ["2026-1", "2026-2"]
    finally:
        await phone.stop()


async def test_suspension_and_termination_take_effect_at_once(
    node: Node, clock: ManualClock
) -> None:
    dev, app, phone = await setup(node)
    other = await sign_up(node)
    base = f"/developers/{dev.developer_id}"
    try:
        async with api(node, OP) as op, dev.client(node) as c:
            assert_error(await c.post(f"{base}/notify", json={"reason": "x"}), 403, "forbidden")
            assert_error(await op.post(f"{base}/notify", json={}), 400, "missing_field")
            assert_error(
                await op.post(f"{base}/terminate", json={"reason": "x"}),
                409,
                "transition_not_allowed",
            )
            r = await op.post(f"{base}/notify", json={"reason": "spam complaints"})
            assert r.json()["developer"]["state"] == "notified"
            assert r.json()["developer"]["deadline"] == clock.now_ms() + 10 * DAY
            assert (await code(node, app, phone))[0] == 0  # notified: still served
            assert_error(
                await op.post(f"{base}/suspend", json={"reason": "x"}), 409, "cure_period_running"
            )
            clock.advance(10 * DAY)
            r = await op.post(f"{base}/suspend", json={"reason": "not cured"})
            assert r.json()["developer"]["state"] == "suspended"
            blocked, reason = await code(node, app, phone)  # the AppSecret was cached: no matter
            assert blocked == 10031 and "suspended" in reason and "not cured" in reason
            assert_error(await c.get("/me"), 401, "unauthorized")  # tokens stop at once
            async with api(node) as anon:
                r = await anon.post("/session", json={"email": dev.email, "password": PASSWORD})
                assert_error(r, 403, "account_blocked")
            async with RawDevice.connect(node) as raw:
                await raw.hello()
                refused = await raw.register(app)
                assert refused["code"] == 22030 and "suspended" in refused["reason"]
            notices = (await op.get(f"{base}/transitions")).json()["transitions"]
            assert [(t["from_state"], t["to_state"]) for t in notices] == [
                ("active", "notified"),
                ("notified", "suspended"),
            ]
            assert all(t["actor"] == "operator:admin_token" for t in notices)
            r = await op.post(f"{base}/reinstate", json={"reason": "cured"})
            assert r.json()["developer"]["state"] == "active"
            assert (await code(node, app, phone))[0] == 0
            r = await op.post(f"{base}/terminate", json={"reason": "fraud", "cause": "material"})
            assert r.json()["developer"]["state"] == "terminated"
            assert (await code(node, app, phone))[0] == 10031
            assert_error(
                await op.post(f"{base}/reinstate", json={"reason": "x"}),
                409,
                "transition_not_allowed",
            )
            # without cause: 30 days' notice, then terminated
            obase = f"/developers/{other.developer_id}"
            o_app = await create_app(node, other)
            o_phone = await Phone(node, o_app).start()
            try:
                r = await op.post(
                    f"{obase}/terminate", json={"reason": "closing", "cause": "without_cause"}
                )
                assert r.json()["developer"]["state"] == "terminating"
                clock.advance(29 * DAY)
                assert (await code(node, o_app, o_phone))[0] == 0
                async with other.client(node) as oc:
                    mine = (await oc.get("/me/notices")).json()
                    assert mine["developer"]["deadline"] == r.json()["developer"]["deadline"]
                    assert mine["notices"][0]["reason"] == "closing"
                clock.advance(DAY)
                assert (await code(node, o_app, o_phone))[0] == 10031
                assert await node.management.states.finish_due_terminations() == [
                    other.developer_id
                ]
                final = (await op.get(f"{obase}")).json()["developer"]
                assert final["state"] == "terminated"
            finally:
                await o_phone.stop()
    finally:
        await phone.stop()


async def test_audit_log_records_sign_ins_and_operations(node: Node) -> None:
    a, b = await sign_up(node), await sign_up(node)
    async with api(node) as anon:
        r = await anon.post("/session", json={"email": a.email, "password": "wrong password!"})
        assert r.status_code == 401
    async with a.client(node) as c:
        await create_app(node, a)
        await c.post("/apps", json={"name": "x", "package": "bad"})  # refused: audited too
        mine = (await c.get("/audit")).json()["entries"]
        assert {e["developer_id"] for e in mine} == {a.developer_id}
        outcomes = {(e["action"], e["outcome"]) for e in mine}
        assert {
            ("sign_up", "ok"),
            ("sign_in", "ok"),
            ("sign_in", "failed"),
            ("token_create", "ok"),
            ("app_create", "ok"),
            ("create_app", "invalid_package"),
        } <= outcomes
        assert all(e["source"] == "127.0.0.1" for e in mine)
        assert (await c.get(f"/audit?developer_id={b.developer_id}")).json()["entries"] == mine
    async with api(node, OP) as op:
        await op.post(f"/developers/{b.developer_id}/notify", json={"reason": "late"})
        every = (await op.get("/audit")).json()["entries"]
        assert {a.developer_id, b.developer_id} <= {e["developer_id"] for e in every}
        notices = (await op.get("/audit?action=notify")).json()["entries"]
        assert [(n["actor"], n["target"], n["detail"]) for n in notices] == [
            ("operator:admin_token", b.developer_id, "active -> notified")
        ]


async def test_api_tokens_expire(node: Node, clock: ManualClock) -> None:
    dev = await sign_up(node)
    async with dev.client(node) as c:
        assert_error(
            await c.post("/tokens", json={"name": "t", "expires_in_days": 0}), 400, "invalid_field"
        )
        r = await c.post("/tokens", json={"name": "short", "expires_in_days": 1})
        assert r.json()["token"]["expires_at"] == clock.now_ms() + DAY
    async with api(node, r.json()["token"]["secret"]) as short:
        assert (await short.get("/me")).status_code == 200
        clock.advance(DAY)
        assert_error(await short.get("/me"), 401, "unauthorized")


async def test_terminated_developers_data_is_erased_after_retention(
    node: Node, clock: ManualClock
) -> None:
    dev, app, phone = await setup(node)
    try:
        async with api(node, OP) as op:
            r = await op.post(
                f"/developers/{dev.developer_id}/terminate",
                json={"reason": "fraud", "cause": "material"},
            )
            assert r.status_code == 200
        states = node.management.states
        clock.advance(89 * DAY)
        assert await states.erase_terminated(90) == []
        assert await node.control.app_by_id(app.app.app_id) is not None
        clock.advance(DAY)
        assert await states.erase_terminated(90) == [phone.reg_id]
        assert await node.control.app_by_id(app.app.app_id) is None
        assert await node.stacks["EU"].store.get_device(phone.reg_id) is None
        kept = await node.store.accounts.developer(dev.developer_id)
        assert kept is not None and kept.state == "terminated"
        log = await node.store.accounts.audit_entries(dev.developer_id, action="retention_erase")
        assert [e.target for e in log] == [app.app.app_id]
    finally:
        await phone.stop()

"""Staff content review through the management API (/api/v1/review)."""

from __future__ import annotations

from tests.e2e.helpers import Phone
from tests.e2e.mgmt import api, create_app, send_to, sign_up
from tests.e2e.test_management import assert_error
from tidings.compliance import moderation
from tidings.node import Node

OP = "op-secret"


async def test_operators_review_held_messages(node: Node) -> None:
    dev = await sign_up(node)
    app = await create_app(node, dev)
    await moderation.add_rule(node.control, "term", "promo", app.app.app_id, "hold")
    phone = await Phone(node, app).start()
    try:
        held = []
        for _ in range(2):
            r = await send_to(node, app.app_secret, app.app.package, phone.reg_id, title="PROMO")
            assert r["data"]["review"] == "held"
            held.append(r["data"]["id"])
        async with api(node, OP) as op, dev.client(node) as c:
            assert_error(await c.get("/review/queue"), 403, "forbidden")
            queue = (await op.get(f"/review/queue?app_id={app.app.app_id}")).json()["held"]
            assert sorted(h["msg_id"] for h in queue) == sorted(held)
            assert (await op.get(f"/review/{held[0]}")).json()["message"]["status"] == "held"
            assert_error(await op.get("/review/nope"), 404, "not_found")
            r = await op.post(f"/review/{held[0]}/approve", json={"reason": "fine"})
            assert r.status_code == 200 and r.json()["message"]["status"] == "approved"
            await phone.wait_for(1)
            assert phone.ids() == [held[0]]
            r = await op.post(f"/review/{held[1]}/reject", json={"reason": "spam"})
            assert r.json()["message"]["status"] == "rejected"
            assert_error(await op.post(f"/review/{held[1]}/approve", json={}), 409, "not_held")
            assert_error(
                await op.post(f"/review/{held[1]}/approve", json={"actor": "me"}),
                400,
                "unknown_field",
            )
            log = (await op.get("/audit?action=review_approve")).json()["entries"]
            assert [(e["target"], e["actor"]) for e in log] == [(held[0], "operator:admin_token")]
    finally:
        await phone.stop()


async def test_developers_see_their_held_and_rejected_messages(node: Node) -> None:
    dev, other = await sign_up(node), await sign_up(node)
    app = await create_app(node, dev)
    await moderation.add_rule(node.control, "term", "promo", app.app.app_id, "hold")
    await moderation.add_rule(node.control, "term", "casino", app.app.app_id, "reject")
    phone = await Phone(node, app).start()
    try:
        held = await send_to(node, app.app_secret, app.app.package, phone.reg_id, title="PROMO")
        refused = await send_to(node, app.app_secret, app.app.package, phone.reg_id, title="casino")
        assert refused["code"] == 26010
        async with dev.client(node) as c, other.client(node) as o:
            view = (await c.get(f"/apps/{app.app.app_id}/review")).json()
            assert [h["msg_id"] for h in view["held"]] == [held["data"]["id"]]
            assert len(view["rejected"]) == 1 and "blocked_term" in view["rejected"][0]["reason"]
            assert_error(await o.get(f"/apps/{app.app.app_id}/review"), 404, "not_found")
    finally:
        await phone.stop()

"""The management API end to end: sign-up, login, tokens, apps, the error shape, isolation."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.e2e.helpers import Phone, RawDevice
from tests.e2e.mgmt import PASSWORD, api, create_app, send_to, sign_up
from tidings.api.management_routes import all_ops
from tidings.node import Node


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    """The one error shape: exactly {"error": {"code", "message"}}."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str)


async def test_openapi_document_lists_every_operation(node: Node) -> None:
    async with api(node) as c:
        r = await c.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    for op in all_ops():
        assert op.method.lower() in doc["paths"]["/api/v1" + op.path], op.path
    sign_up_body = doc["paths"]["/api/v1/developers"]["post"]["requestBody"]
    assert sign_up_body["content"]["application/json"]["schema"]["additionalProperties"] is False


async def test_error_shape_is_one_for_every_failure(node: Node) -> None:
    dev = await sign_up(node)
    async with api(node) as anon, dev.client(node) as c:
        assert_error(await anon.get("/apps"), 401, "unauthorized")
        assert_error(await anon.get("/nothing/here"), 404, "not_found")
        assert_error(await anon.put("/developers"), 405, "method_not_allowed")
        assert_error(await c.get("/developers"), 403, "forbidden")
        assert_error(await c.post("/tokens", content=b"{not json"), 400, "invalid_json")
        assert_error(await c.post("/tokens", json=[1]), 400, "invalid_json")
        deep = b"[" * 20_000 + b"]" * 20_000  # deeper than the parser goes
        assert_error(await c.post("/tokens", content=deep), 400, "invalid_json")
        assert_error(await c.post("/tokens", json={"name": "a\u0000b"}), 400, "invalid_json")
        assert_error(await c.post("/tokens", json={}), 400, "missing_field")
        assert_error(await c.post("/tokens", json={"name": 5}), 400, "invalid_field")
        assert_error(
            await c.post("/tokens", json={"name": "x", "admin": True}), 400, "unknown_field"
        )
        big = {"name": "x" * 70_000}
        assert_error(await c.post("/tokens", json=big), 413, "body_too_large")
        assert_error(await c.get("/apps/0000000000000"), 404, "not_found")
    bad = api(node, "tdk_not-a-token")
    async with bad:
        assert_error(await bad.get("/me"), 401, "unauthorized")


async def test_sign_up_bad_input_changes_nothing(node: Node) -> None:
    good = {"email": "a@example.com", "password": PASSWORD, "legal_name": "A", "region": "EU"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "password": "short"}, 400, "weak_password"),
        ({**good, "password": "aaaaaaaaaaaaaa"}, 400, "weak_password"),
        ({k: v for k, v in good.items() if k != "password"}, 400, "missing_field"),
        ({**good, "password": ""}, 400, "password_missing"),
        ({**good, "email": "not-an-email"}, 400, "invalid_email"),
        ({**good, "region": "XX"}, 400, "unknown_region"),
        ({**good, "region": "CN"}, 400, "region_not_served"),
        ({**good, "role": "operator"}, 400, "unknown_field"),
        ({**good, "legal_name": "  "}, 400, "invalid_field"),
    ]
    async with api(node) as c:
        for body, status, code in cases:
            assert_error(await c.post("/developers", json=body), status, code)
        assert await node.store.accounts.developers() == []
        assert (await c.post("/developers", json=good)).status_code == 201
        assert_error(await c.post("/developers", json=good), 409, "email_taken")
        assert_error(
            await c.post("/developers", json={**good, "email": "A@Example.com"}), 409, "email_taken"
        )
        regions = (await c.get("/regions")).json()["regions"]
    assert len(await node.store.accounts.developers()) == 1
    cn = {"code": "CN", "entity": "separate agreement", "served": False, "on_this_node": False}
    assert cn in regions


async def test_login_cookie_and_tokens(node: Node) -> None:
    dev = await sign_up(node)
    async with api(node) as c:
        assert_error(
            await c.post("/session", json={"email": dev.email, "password": "wrong password!"}),
            401,
            "bad_credentials",
        )
        assert_error(
            await c.post("/session", json={"email": "nobody@x.org", "password": PASSWORD}),
            401,
            "bad_credentials",
        )
        r = await c.post("/session", json={"email": dev.email, "password": PASSWORD})
        assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
        assert (await c.get("/me")).json()["developer"]["developer_id"] == dev.developer_id
        r = await c.post("/tokens", json={"name": "ci"})
        token = r.json()["token"]
        listed = (await c.get("/tokens")).json()["tokens"]
        assert token["token_id"] in [t["token_id"] for t in listed]
        assert all("secret" not in t and "token_hash" not in t for t in listed)
        assert (await c.delete("/session")).status_code == 200
        assert_error(await c.get("/me"), 401, "unauthorized")
    stored = await node.store.accounts.credentials(dev.developer_id, "api")
    assert token["secret"] not in repr(stored)  # only the digest is kept
    async with api(node, token["secret"]) as t:
        assert (await t.get("/me")).status_code == 200
        assert (await t.delete(f"/tokens/{token['token_id']}")).status_code == 200
        assert_error(await t.get("/me"), 401, "unauthorized")


async def test_apps_create_rotate_delete_through_api(node: Node) -> None:
    dev = await sign_up(node)
    new = await create_app(node, dev)
    async with dev.client(node) as c:
        listed = (await c.get("/apps")).json()["apps"]
        assert [a["app_id"] for a in listed] == [new.app.app_id]
        assert "app_secret" not in listed[0]
        assert_error(
            await c.post("/apps", json={"name": "x", "package": new.app.package}),
            409,
            "package_taken",
        )
        assert_error(
            await c.post("/apps", json={"name": "x", "package": "nope"}), 400, "invalid_package"
        )
    phone = await Phone(node, new).start()
    try:
        r = await send_to(node, new.app_secret, new.app.package, phone.reg_id)
        assert r["code"] == 0
        await phone.wait_for(1)
        async with dev.client(node) as c:
            r = await c.post(f"/apps/{new.app.app_id}/secrets")
        assert r.status_code == 200
        rotated = r.json()["app"]
        assert rotated["app_secret"] != new.app_secret
        # the old secret stops at once, though the node cached it a moment ago
        old = await send_to(node, new.app_secret, new.app.package, phone.reg_id)
        assert old["code"] == 21301
        fresh = await send_to(node, rotated["app_secret"], new.app.package, phone.reg_id)
        assert fresh["code"] == 0
        async with RawDevice.connect(node) as raw:
            await raw.hello()
            refused = await raw.register(new)  # the old AppKey
            assert refused["code"] == 22007
        assert await node.stacks["EU"].store.get_device(phone.reg_id) is not None  # its region
        async with dev.client(node) as c:
            assert (await c.delete(f"/apps/{new.app.app_id}")).status_code == 200
            assert_error(await c.get(f"/apps/{new.app.app_id}"), 404, "not_found")
        gone = await send_to(node, rotated["app_secret"], new.app.package, phone.reg_id)
        assert gone["code"] == 21301
        assert await node.stacks["EU"].store.get_device(phone.reg_id) is None
    finally:
        await phone.stop()


async def test_tenant_isolation_every_method(node: Node) -> None:
    a, b = await sign_up(node), await sign_up(node)
    b_app = await create_app(node, b)
    async with b.client(node) as c:
        b_token = (await c.post("/tokens", json={"name": "second"})).json()["token"]["token_id"]
    foreign = {"app_id": b_app.app.app_id, "token_id": b_token, "developer_id": b.developer_id}
    missing = {"app_id": "9999999999999", "token_id": "tok_0000", "developer_id": "dev_0000"}
    successes, compared = 0, 0
    async with a.client(node) as c:
        for op in all_ops():
            names = [n for n in foreign if "{" + n + "}" in op.path]
            if not names:
                continue
            answers = []
            for ids in (foreign, missing):
                path = op.path
                for n in names:
                    path = path.replace("{" + n + "}", ids[n])
                r = await c.request(op.method, path, json={} if op.method == "POST" else None)
                successes += r.status_code < 400
                answers.append((r.status_code, r.json()["error"]["code"]))
            assert answers[0] == answers[1], op.path  # a foreign id looks like a missing one
            compared += 1
    assert successes == 0 and compared >= 5
    assert await node.control.app_by_id(b_app.app.app_id) is not None  # nothing changed for B
    async with b.client(node) as c:
        tokens = (await c.get("/tokens")).json()["tokens"]
    assert all(t["revoked_at"] is None for t in tokens)


async def test_operator_sees_every_app(node: Node) -> None:
    dev = await sign_up(node)
    new = await create_app(node, dev)
    node_token = node.settings.admin_token
    async with api(node, node_token) as op:
        apps = (await op.get("/apps")).json()["apps"]
        assert [(x["app_id"], x["developer_id"]) for x in apps] == [
            (new.app.app_id, dev.developer_id)
        ]
        devs = (await op.get("/developers")).json()["developers"]
        assert [d["email"] for d in devs] == [dev.email]
        assert "password_hash" not in devs[0]


async def test_odd_requests_get_their_documented_answers(node: Node) -> None:
    """Found by a review on a real server: each of these was a 500, a 307 or a silent accept."""
    dev = await sign_up(node)
    new = await create_app(node, dev)
    async with api(node) as anon, dev.client(node) as c, api(node, "op-secret") as op:
        body = {
            "email": "s@example.com",
            "password": PASSWORD,
            "legal_name": "\ud800",
            "region": "EU",
        }
        r = await anon.post("/developers", content=json.dumps(body))  # "\ud800" on the wire
        assert_error(r, 400, "invalid_json")
        assert (await anon.head("/regions")).status_code == 200  # a GET without its body
        assert_error(await anon.get("/regions/"), 404, "not_found")  # no redirect

        async def chunks():  # no Content-Length: refused as it passes the cap
            for _ in range(100):
                yield b" " * 65_536

        assert_error(await anon.post("/developers", content=chunks()), 413, "body_too_large")
        # a trailing newline is not part of a valid value
        r = await c.post("/apps", json={"name": "x", "package": new.app.package + "\n"})
        assert_error(r, 400, "invalid_package")
        terms = {"version": "2031-01\n", "text": "t", "effective_at": "2031-01-01T00:00:00Z"}
        assert_error(await op.post("/terms", json=terms), 400, "invalid_field")
        assert_error(await op.get("/developers?state=bogus"), 400, "invalid_field")
        # the admin token is an operator without an account: it owns no tokens, no apps
        assert_error(await op.post("/tokens", json={"name": "t"}), 403, "forbidden")
        r = await op.post("/apps", json={"name": "x", "package": "com.example.op"})
        assert_error(r, 403, "forbidden")
        # an operator's action on a developer's app is in the developer's trail, once
        r = await op.post(f"/apps/{new.app.app_id}/secrets")
        assert r.json()["app"]["developer_id"] == dev.developer_id
        mine = (await c.get("/audit?action=app_rotate_secrets")).json()["entries"]
        assert [(e["actor"], e["target"]) for e in mine] == [
            ("operator:admin_token", new.app.app_id)
        ]
        await c.post("/apps", json={"name": "x", "package": new.app.package})  # taken
        taken = (await c.get("/audit?action=app_create")).json()["entries"]
        assert [e["outcome"] for e in taken].count("refused") == 1
        # a sign-in refused for its body is audited too
        await anon.post("/session", json={"email": dev.email, "password": PASSWORD, "x": 1})
        log = (await op.get("/audit?action=login")).json()["entries"]
        assert [e["outcome"] for e in log] == ["unknown_field"]
        # a terminating account in breach is terminated, not suspended (the guide's diagram)
        base = f"/developers/{dev.developer_id}"
        r = await op.post(f"{base}/terminate", json={"reason": "x", "cause": "without_cause"})
        assert r.json()["developer"]["state"] == "terminating"
        r = await op.post(f"{base}/suspend", json={"reason": "x", "material": True})
        assert_error(r, 409, "transition_not_allowed")

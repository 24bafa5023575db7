"""Helpers for management API tests: a developer signed up through the API, with a token."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any

import httpx

from tidings.client.sender import SenderClient, SendError
from tidings.core.models import App, NewApp
from tidings.node import Node

PASSWORD = "correct horse battery"


def api(node: Node, token: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=node.urls()["api"] + "/api/v1", headers=headers)


@dataclasses.dataclass
class Dev:
    developer_id: str
    email: str
    token: str

    def client(self, node: Node) -> httpx.AsyncClient:
        return api(node, self.token)


async def sign_up(node: Node, region: str = "EU") -> Dev:
    email = f"dev-{secrets.token_hex(4)}@example.com"
    async with api(node) as c:
        r = await c.post(
            "/developers",
            json={"email": email, "password": PASSWORD, "legal_name": "Acme Ltd", "region": region},
        )
        assert r.status_code == 201, r.text
        dev_id = r.json()["developer"]["developer_id"]
        r = await c.post("/session", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = await c.post("/tokens", json={"name": "tests"})
        assert r.status_code == 201, r.text
        return Dev(dev_id, email, r.json()["token"]["secret"])


async def create_app(node: Node, dev: Dev, package: str | None = None) -> NewApp:
    package = package or f"com.example.a{secrets.token_hex(4)}"
    async with dev.client(node) as c:
        r = await c.post("/apps", json={"name": "Demo", "package": package})
    assert r.status_code == 201, r.text
    a = r.json()["app"]
    app = App(a["app_id"], a["name"], a["package"], "", "", None, a["created_at"], a["region"])
    return NewApp(app, a["app_key"], a["app_secret"])


async def send_to(
    node: Node, secret: str, package: str, reg_id: str, title: str = "t"
) -> dict[str, Any]:
    client = SenderClient(node.urls()["api"], secret, package)
    try:
        return dict(
            await asyncio.to_thread(client.send, "regid", reg_id, title=title, description="d")
        )
    except SendError as err:
        return err.response
    finally:
        client.close()

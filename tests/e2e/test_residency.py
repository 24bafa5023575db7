"""Data residency: each region's end-user data lives in its own store and nowhere else.

Real nodes, real SQLite files (and PostgreSQL schemas), real devices and Mi Push's sender SDK;
the proof is a scan of every byte of every other store for the region's identifiers and texts.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path

import psycopg

from tests.e2e.helpers import Phone, RawDevice, running_node
from tests.e2e.mgmt import Dev, api, create_app, send_to, sign_up
from tidings.core.models import NewApp
from tidings.node import Node
from tidings.residency import pg_schema, sqlite_path

REGIONS = ("EU", "IN", "ROW")


async def _populate(node: Node, region: str, dev: Dev | None) -> tuple[NewApp, dict[str, str]]:
    """An app of ``region`` with a device that consents, an alias, a topic, a message, a click."""
    if dev is None:
        app = await node.create_app("Boot", f"com.example.r{secrets.token_hex(3)}")
    else:
        app = await create_app(node, dev)
    tag = secrets.token_hex(6)
    alias = f"alias-{region}-{tag}"
    phone = await Phone(
        node, app, aliases=[alias], topics=[f"topic-{tag}"], consent_version="v1"
    ).start()
    try:
        title = f"title-{region}-{tag}"
        r = await send_to(node, app.app_secret, app.app.package, phone.reg_id, title=title)
        assert r["code"] == 0, r
        await phone.wait_for(1)
        await phone.client.click(phone.messages[0])
        region_store, msg_id = node.stacks[region].store, r["data"]["id"]
        async with asyncio.timeout(5):  # the click and the ack reach the store
            while True:
                stats = await region_store.message_stats(app.app.app_id, msg_id)
                if stats is not None and stats.click >= 1 and stats.delivered >= 1:
                    break
                await asyncio.sleep(0.05)
    finally:
        await phone.stop()
    assert app.app.region == region
    needles = {"reg_id": phone.reg_id, "alias": alias, "title": title, "msg_id": r["data"]["id"]}
    return app, needles


async def _send_and_receive(node: Node, app: NewApp) -> None:
    phone = await Phone(node, app).start()
    try:
        r = await send_to(node, app.app_secret, app.app.package, phone.reg_id)
        assert r["code"] == 0, r
        await phone.wait_for(1)
    finally:
        await phone.stop()


def _files(data_dir: Path, name: str) -> list[Path]:
    db = sqlite_path(data_dir, name)
    return [p for p in (db, Path(f"{db}-wal")) if p.exists()]


async def test_each_regions_data_is_absent_from_every_other_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_node(data, ack_timeout_s=0.5) as node:
        assert node.residency.served == ["EU", "UK", "IN", "RU", "ROW"]
        eu, india = await sign_up(node, "EU"), await sign_up(node, "IN")
        found = {
            "EU": await _populate(node, "EU", eu),
            "IN": await _populate(node, "IN", india),
            "ROW": await _populate(node, "ROW", None),
        }
        for region, (app, needles) in found.items():
            own = node.stacks[region].store
            assert await own.get_device(needles["reg_id"]) is not None
            assert (await own.consent_head(app.app.app_id))[0] == 1  # the device's consent
            for other, stack in node.stacks.items():
                if other != region:
                    assert await stack.store.get_device(needles["reg_id"]) is None
                    assert (await stack.store.consent_head(app.app.app_id))[0] == 0
                    assert (
                        await stack.store.message_stats(app.app.app_id, needles["msg_id"]) is None
                    )
    stores = ["control", "EU", "UK", "IN", "RU", "ROW"]
    contents = {name: b"".join(p.read_bytes() for p in _files(data, name)) for name in stores}
    assert all(contents[name] for name in stores)  # every store exists on disk
    for region, (_, needles) in found.items():
        for what, needle in needles.items():
            assert needle.encode() in contents[region], (region, what)  # the scan can see it
            for other in stores:
                if other != region:
                    assert needle.encode() not in contents[other], (region, what, other)
    with sqlite3.connect(sqlite_path(data, "EU")) as db:  # and by rows, per kind of data
        app_id = found["EU"][0].app.app_id
        for table in ("devices", "messages", "message_stats", "daily_stats"):
            rows = db.execute(f"SELECT count(*) FROM {table} WHERE app_id = ?", (app_id,))
            assert rows.fetchone()[0] >= 1, table
        assert db.execute("SELECT count(*) FROM apps WHERE secret_hash LIKE '-%'").fetchone()[0]
        assert db.execute("SELECT count(*) FROM developers").fetchone()[0] == 0
    with sqlite3.connect(sqlite_path(data, "control")) as db:
        for table in ("devices", "messages", "message_stats", "consent_ledger", "inbox"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


async def test_a_node_for_some_regions_refuses_the_others(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_node(data) as node:
        eu, india = await sign_up(node, "EU"), await sign_up(node, "IN")
        eu_app, in_app = await create_app(node, eu), await create_app(node, india)
        phone = await Phone(node, in_app).start()
        reg_id = phone.reg_id
        await phone.stop()
    async with running_node(data, serve_regions="EU") as node:
        assert node.residency.served == ["EU"]
        # the sender API: India's app gets a clear code and reason, Europe's is served
        refused = await send_to(node, in_app.app_secret, in_app.app.package, reg_id)
        assert refused["code"] == 22040
        assert "region IN is not served by this node" in refused["reason"]
        await _send_and_receive(node, eu_app)
        # the gateway: a device of India's app is refused at registration
        async with RawDevice.connect(node) as raw:
            await raw.hello()
            answer = await raw.register(in_app)
            assert answer["code"] == 22040 and "IN" in answer["reason"]
        # the management API: India's developer cannot make apps here; regions are listed
        async with india.client(node) as c:
            r = await c.post("/apps", json={"name": "X", "package": "com.example.nothere"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "region_not_served"
            for path in ("sdk-versions", "review"):
                r = await c.get(f"/apps/{in_app.app.app_id}/{path}")
                assert r.status_code == 409 and r.json()["error"]["code"] == "region_not_served"
        async with api(node) as c:
            listed = {r["code"]: r for r in (await c.get("/regions")).json()["regions"]}
        assert listed["EU"]["on_this_node"] and not listed["IN"]["on_this_node"]
        assert not listed["CN"]["served"]
    async with running_node(data, serve_regions="IN") as node:  # India's node still has it all
        await _send_and_receive(node, in_app)


def _reset_pg(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for (schema,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tidings\\_%'"
        ).fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


async def test_postgres_keeps_each_region_in_its_own_schema(tmp_path: Path, pg_url: str) -> None:
    _reset_pg(pg_url)
    async with running_node(
        tmp_path / "unused", database_url=pg_url, serve_regions="EU,ROW", ack_timeout_s=0.5
    ) as node:
        eu = await sign_up(node, "EU")
        app, needles = await _populate(node, "EU", eu)
        _, row_needles = await _populate(node, "ROW", None)
    with psycopg.connect(pg_url, autocommit=True) as conn:

        def count(schema: str, table: str, column: str, value: str) -> int:
            q = f'SELECT count(*) FROM "{schema}".{table} WHERE {column} = %s'
            row = conn.execute(q, (value,)).fetchone()
            return int(row[0]) if row else 0

        eu_schema, row_schema = pg_schema("EU"), pg_schema("ROW")
        assert count(eu_schema, "devices", "reg_id", needles["reg_id"]) == 1
        assert count(eu_schema, "messages", "msg_id", needles["msg_id"]) == 1
        for schema in ("public", row_schema):
            assert count(schema, "devices", "reg_id", needles["reg_id"]) == 0
            assert count(schema, "messages", "msg_id", needles["msg_id"]) == 0
            assert count(schema, "consent_ledger", "app_id", app.app.app_id) == 0
            assert count(schema, "message_stats", "app_id", app.app.app_id) == 0
        assert count(row_schema, "devices", "reg_id", row_needles["reg_id"]) == 1
        assert count(eu_schema, "devices", "reg_id", row_needles["reg_id"]) == 0
        assert count("public", "apps", "app_id", app.app.app_id) == 1  # the registry
        assert count("public", "developers", "developer_id", eu.developer_id) == 1
        assert count(eu_schema, "developers", "developer_id", eu.developer_id) == 0
    _reset_pg(pg_url)
    assert not (tmp_path / "unused").exists()

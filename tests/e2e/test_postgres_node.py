"""A whole node on PostgreSQL: the same flows as the embedded default, through the same SDKs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
from xmpush.APISender import APISender

from tests.e2e.helpers import Phone, point_xmpush_at, running_node
from tests.e2e.mgmt import sign_up
from tests.e2e.test_mipush_sdk import call, message


async def test_node_on_postgres_sends_and_stores(tmp_path: Path, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a clean schema for this node
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    async with running_node(tmp_path / "unused", database_url=pg_url, ack_timeout_s=0.5) as node:
        point_xmpush_at(node)
        app = await node.create_app("Demo", "com.example.demo")
        state = tmp_path / "p.json"
        phone = await Phone(node, app, state=state, aliases=["pg"], topics=["t"]).start()
        sender = APISender(app.app_secret)
        r1 = await call(sender.send, message("one"), phone.reg_id, retry_times=1)
        r2 = await call(sender.broadcast, message("two"), "t", retry_times=1)
        await phone.wait_for(2)
        assert phone.ids() == [r1.data.id, r2.data.id]
        await phone.stop()
        r3 = await call(sender.send_to_alias, message("three"), "pg", retry_times=1)
        again = await Phone(node, app, state=state).start()  # offline, then back
        await again.wait_for(1)
        assert again.ids() == [r3.data.id]
        async with asyncio.timeout(5):
            while (await node.store.counts())["inbox"]:
                await asyncio.sleep(0.05)
        await again.stop()
    assert not (tmp_path / "unused").exists()  # nothing went to SQLite


async def test_concurrent_duplicates_are_conflicts_not_outages(tmp_path: Path, pg_url: str) -> None:
    """Eight parallel creates of one package: one app, seven 409s (a unique-key race on
    PostgreSQL is run again, and then the operation's own check answers)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    async with running_node(tmp_path / "unused", database_url=pg_url) as node:
        dev = await sign_up(node)
        async with dev.client(node) as c:
            body = {"name": "x", "package": "com.example.race"}
            answers = await asyncio.gather(*(c.post("/apps", json=body) for _ in range(8)))
        assert sorted(r.status_code for r in answers) == [201] + [409] * 7

"""Data-subject export and erasure end to end: afterwards the files hold no trace of the device."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.e2e.helpers import Phone, running_node
from tests.e2e.test_delivery import send, sender
from tidings.compliance import consent, erasure
from tidings.errors import ComplianceError
from tidings.residency import sqlite_path


async def test_export_then_erase_leaves_no_trace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "data"
    alias = "erase-me-alias-7f3a9c"
    account = "erase-me-account-51be"
    async with running_node(data, ack_timeout_s=0.5) as node:
        app = await node.create_app("Gated", "com.example.gated", "v1")
        phone = await Phone(
            node, app, aliases=[alias], account=account, topics=["news"], consent_version="v1"
        ).start()
        reg_id = phone.reg_id
        delivered = await send(node, app, "alias", alias, title="delivered")
        await phone.wait_for(1)
        await phone.stop()
        queued = await send(node, app, "regid", reg_id, title="queued")

        exported = await erasure.export(node.store, reg_id)
        assert exported["device"]["reg_id"] == reg_id  # type: ignore[index]
        assert exported["device"]["account"] == account  # type: ignore[index]
        assert exported["aliases"] == [alias] and exported["topics"] == ["news"]
        assert queued in [m["msg_id"] for m in exported["inbox"]]  # type: ignore[attr-defined]
        assert [r["action"] for r in exported["consent_records"]] == ["agreed"]  # type: ignore[attr-defined]
        assert delivered

        def traces(needle: str) -> int:
            return sum(p.read_bytes().count(needle.encode()) for p in data.iterdir() if p.is_file())

        assert traces(reg_id) > 0 and traces(alias) > 0  # the scan below can see them

        rec = await erasure.erase(node.store, reg_id, node.hub)
        assert rec.action == "erased"
        with pytest.raises(ComplianceError):
            await erasure.export(node.store, reg_id)
        # the consent proof stays, pseudonymous, and the chain still verifies
        hist = await consent.history(node.store, app.app.app_id, reg_id)
        assert [r.action for r in hist] == ["agreed", "erased"]
        assert await consent.verify(node.store) == []

        files = sorted(p for p in data.iterdir() if p.is_file())
        assert any(p.name.endswith(".db") for p in files)
        for needle in (reg_id, alias, account):
            for path in files:
                assert needle.encode() not in path.read_bytes(), (needle, path.name)
            assert not any(needle in r.getMessage() for r in caplog.records)
        wal = [p for p in files if p.name == sqlite_path(data, "ROW").name + "-wal"]
        assert all(p.stat().st_size == 0 for p in wal)  # the region's WAL was truncated


async def test_erasing_a_device_keeps_sends_to_an_account_another_device_holds(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path / "d", ack_timeout_s=0.5, schedule_poll_s=0.1) as node:
        app = await node.create_app("Demo", "com.example.demo")
        old = await Phone(node, app, account="alice").start()
        new = await Phone(node, app, account="alice").start()
        params = {"restricted_package_name": app.app.package, "title": "later", "description": "d"}
        params |= {"user_account": "alice", "time_to_send": node.store.clock.now_ms() + 1500}
        client = sender(node, app)
        try:
            r = await asyncio.to_thread(client.call, "/v2/message/user_account", params)
        finally:
            client.close()
        job = r["data"]["id"]
        await erasure.erase(node.store, old.reg_id, node.hub)  # her old phone
        await new.wait_for(1)  # the scheduled send still reaches her other one
        assert new.ids() == [job]
        await old.stop()
        await new.stop()

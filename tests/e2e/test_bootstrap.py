"""Nothing breaks: `tidings app create` makes apps owned by one bootstrap developer."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from tests.e2e.test_crash import TIDINGS
from tidings import settings
from tidings.compliance.accounts import BOOTSTRAP_EMAIL
from tidings.residency import open_residency


def create_app(data_dir: Path, package: str) -> str:
    args = ["app", "create", "--data-dir", str(data_dir), "--name", "C", "--package", package]
    out = subprocess.run([*TIDINGS, *args], capture_output=True, text=True, check=True)
    return str(json.loads(out.stdout)["app_id"])


def test_app_create_reuses_one_bootstrap_developer(tmp_path: Path) -> None:
    first = create_app(tmp_path, "com.example.one")
    second = create_app(tmp_path, "com.example.two")

    async def owners() -> tuple[list[str | None], int, list[str]]:
        res = open_residency(settings.load(env={}, overrides={"data_dir": str(tmp_path)}))
        await res.start()
        store = res.control
        try:
            apps = await store.accounts.apps_of(None)
            devs = await store.accounts.developers()
            log = await store.accounts.audit_entries(None, action="app_create")
            return [owner for _, owner in apps], len(devs), [e.target for e in log]
        finally:
            await res.close()

    found, developers, audited = asyncio.run(owners())
    assert developers == 1 and found == ["dev_bootstrap", "dev_bootstrap"]
    assert sorted(audited) == sorted([first, second])
    assert BOOTSTRAP_EMAIL.endswith(".invalid")  # nobody can receive mail or sign in as it

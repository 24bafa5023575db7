"""Operator CLI (`tidings terms`, `tidings developer`, `tidings audit`) against a running node."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.helpers import Phone, RawDevice, running_node
from tests.e2e.mgmt import PASSWORD, api, create_app, send_to, sign_up
from tests.e2e.test_crash import TIDINGS


def cli(data: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*TIDINGS, *args, "--data-dir", str(data)], capture_output=True, text=True, input="Terms."
    )
    assert (out.returncode == 0) == ok, out.stderr
    return out


def lines(out: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.stdout.splitlines()]


async def test_operator_cli_drives_a_running_node(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_node(data, terms_grace_days=0.0) as node:
        dev = await sign_up(node)
        app = await create_app(node, dev)
        phone = await Phone(node, app).start()

        async def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(cli, data, *args, ok=ok)

        async def send() -> tuple[int, str]:
            r = await send_to(node, app.app_secret, app.app.package, phone.reg_id)
            return int(r["code"]), str(r.get("reason", ""))

        try:
            listed = lines(await run("developer", "list"))
            assert [d["developer_id"] for d in listed] == [dev.developer_id]
            bad = await run("developer", "terminate", dev.developer_id, "--reason", "x", ok=False)
            assert "transition_not_allowed" in bad.stderr
            await run("developer", "suspend", dev.developer_id, "--reason", "abuse", "--material")
            assert await send() == (10031, "developer account suspended: abuse")
            await run("developer", "reinstate", dev.developer_id, "--reason", "cured")
            assert (await send())[0] == 0
            past = await run(
                "terms", "publish", "--version", "v0", "--text-file", "-",
                "--effective-at", "2000-01-01T00:00:00Z", ok=False,
            )  # fmt: skip
            assert "effective_before_publication" in past.stderr
            await run("terms", "publish", "--version", "v1", "--text-file", "-")
            blocked, reason = await send()
            assert blocked == 10036 and "v1" in reason
            assert [
                (t["version"], t["acceptances"]) for t in lines(await run("terms", "list"))
            ] == [("v1", 0)]
            actions = [e["action"] for e in lines(await run("audit", "--limit", "50"))]
            assert {"terms_publish", "suspend", "reinstate", "sign_in"} <= set(actions)
            suspended = lines(await run("audit", "--action", "suspend"))
            assert suspended[0]["actor"].startswith("operator:")
            assert suspended[0]["source"] == "cli"
            await run("sdk-policy", "set", "--sdk", "tidings-python", "--min", "99.0")
            assert [p["min_version"] for p in lines(await run("sdk-policy", "list"))] == ["99.0"]
            async with RawDevice.connect(node) as raw:
                await raw.hello()
                refused = await raw.register(app, sdk={"name": "tidings-python", "version": "1.0"})
                assert refused["code"] == 22031
            bad = await run("sdk-policy", "set", "--sdk", "x", "--min", "new", ok=False)
            assert "invalid_field" in bad.stderr
        finally:
            await phone.stop()


async def test_operator_accounts_sign_in_and_act_as_themselves(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_node(data) as node:
        dev = await sign_up(node)

        def make(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
            out = subprocess.run(
                [*TIDINGS, "operator", "create", "--data-dir", str(data), *args],
                capture_output=True,
                text=True,
                input=PASSWORD + "\n",
            )
            assert (out.returncode == 0) == ok, out.stderr
            return out

        made = lines(
            await asyncio.to_thread(
                make, "--email", "ann@ops.example", "--legal-name", "Ann", "--password-stdin"
            )
        )[0]
        assert made["role"] == "operator" and "password_hash" not in made
        dup = await asyncio.to_thread(
            make, "--email", "ann@ops.example", "--legal-name", "Ann", "--password-stdin", ok=False
        )
        assert "email_taken" in dup.stderr
        async with api(node) as c:
            r = await c.post("/session", json={"email": "ann@ops.example", "password": PASSWORD})
            assert r.status_code == 200
            listed = (await c.get("/developers")).json()["developers"]
            assert dev.email in [d["email"] for d in listed]
            r = await c.post(f"/developers/{dev.developer_id}/notify", json={"reason": "late"})
            assert r.status_code == 200
            entry = (await c.get("/audit?action=notify")).json()["entries"][0]
            assert entry["actor"] == f"operator:{made['developer_id']}"

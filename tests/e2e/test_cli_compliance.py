"""The compliance commands of `tidings` end to end, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_crash import TIDINGS, Server, create_app, server  # noqa: F401
from tidings.core.models import DeviceInfo
from tidings.residency import sqlite_path
from tidings.store.sqlite import SQLiteEngine
from tidings.store.store import Store


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TIDINGS, *args], capture_output=True, text=True, timeout=60)


def lines(out: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def make_app(data_dir: Path) -> str:
    out = run("app", "create", "--data-dir", str(data_dir), "--name", "D", "--package", "com.e.d")
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)["app_id"])


async def _register(data_dir: Path, app_id: str, n: int) -> list[str]:
    store = Store(SQLiteEngine(sqlite_path(data_dir, "ROW")))
    await store.start()
    try:
        return [
            await store.register_device(app_id, f"u{i}", DeviceInfo(consent_version="v1"))
            for i in range(n)
        ]
    finally:
        await store.close()


def test_policy_add_list_and_consent_verify_finds_tampering(tmp_path: Path) -> None:
    d = str(tmp_path)
    app_id = make_app(tmp_path)
    out = run("app", "policy", "add", "--data-dir", d, "--app-id", app_id, "--version", "v1",
              "--url", "https://example.com/p1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = run("app", "policy", "list", "--data-dir", d, "--app-id", app_id)
    assert [p["version"] for p in lines(out.stdout)] == ["v1"]
    bad = run("app", "policy", "add", "--data-dir", d, "--app-id", app_id, "--version", "v1",
              "--url", "https://example.com/p1")  # fmt: skip
    assert bad.returncode != 0 and "already exists" in bad.stderr

    regs = asyncio.run(_register(tmp_path, app_id, 4))
    out = run("consent", "verify", "--data-dir", d)
    assert out.returncode == 0 and lines(out.stdout) == [{"ok": True}]
    out = run("consent", "history", "--data-dir", d, "--app-id", app_id, "--regid", regs[1])
    assert [(r["seq"], r["action"]) for r in lines(out.stdout)] == [(2, "agreed")]

    with sqlite3.connect(sqlite_path(tmp_path, "ROW")) as db:
        db.execute("UPDATE consent_ledger SET at = at + 1 WHERE seq = 2")
    out = run("consent", "verify", "--data-dir", d)
    assert out.returncode == 1
    assert [(p["seq"], p["problem"]) for p in lines(out.stdout)] == [(2, "record was changed")]


def test_device_export_and_erase(tmp_path: Path) -> None:
    d = str(tmp_path)
    app_id = make_app(tmp_path)
    reg, other = asyncio.run(_register(tmp_path, app_id, 2))
    out = run("device", "export", "--data-dir", d, "--regid", reg)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["device"]["reg_id"] == reg and doc["consent_records"][0]["action"] == "agreed"
    out = run("device", "erase", "--data-dir", d, "--regid", reg)
    assert out.returncode == 0 and json.loads(out.stdout)["action"] == "erased"
    assert reg not in out.stdout
    again = run("device", "erase", "--data-dir", d, "--regid", reg)
    assert again.returncode == 1 and "unknown reg_id" in again.stderr
    for path in tmp_path.iterdir():
        if path.is_file():
            assert reg.encode() not in path.read_bytes()
            in_store = path.name == sqlite_path(tmp_path, "ROW").name
            assert (other.encode() in path.read_bytes()) == in_store  # only in its region's


def test_review_rules_queue_and_approve(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("TIDINGS_ADMIN_TOKEN", "cli-operator-token")
    server.start()
    app = create_app(server.data_dir)
    d = str(server.data_dir)
    out = run("review", "rule", "add", "--data-dir", d, "--kind", "term", "--pattern", "promo",
              "--action", "hold")  # fmt: skip
    assert out.returncode == 0, out.stderr
    rule = json.loads(out.stdout)
    assert (rule["kind"], rule["action"], rule["app_id"]) == ("term", "hold", None)
    out = run("review", "rule", "list", "--data-dir", d)
    assert [r["rule_id"] for r in lines(out.stdout)] == [rule["rule_id"]]
    bad = run("review", "rule", "add", "--data-dir", d, "--kind", "regex", "--pattern", "(")
    assert bad.returncode == 1 and "bad regex" in bad.stderr

    sent = run("send", "--api", server.api, "--secret", app.app_secret, "--package",
               app.app.package, "--regid", "someone", "--title", "Promo!",
               "--description", "d")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    msg_id = json.loads(sent.stdout)["data"]["id"]
    queue = run("review", "queue", "--api", server.api)
    assert [q["msg_id"] for q in lines(queue.stdout)] == [msg_id]
    ok = run("review", "approve", "--api", server.api, "--actor", "ann", msg_id)
    assert ok.returncode == 0 and lines(ok.stdout)[0]["status"] == "approved"
    again = run("review", "reject", "--api", server.api, msg_id)
    assert again.returncode == 1 and "not held" in again.stderr
    wrong = run("review", "queue", "--api", server.api, "--token", "nope")
    assert wrong.returncode == 1 and "unauthorized" in wrong.stderr
    out = run("review", "rule", "remove", "--data-dir", d, rule["rule_id"])
    assert out.returncode == 0

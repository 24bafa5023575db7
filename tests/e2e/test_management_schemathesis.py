"""Schemathesis over the served OpenAPI document: a bounded run must find no server error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.mgmt import PASSWORD
from tests.e2e.test_crash import Server, server  # noqa: F401

ST = Path(sys.executable).with_name("st")
OP = "op-secret-schemathesis"


def developer_token(api: str) -> str:
    with httpx.Client(base_url=api + "/api/v1") as c:
        body = {"email": "st@example.com", "password": PASSWORD, "legal_name": "S", "region": "EU"}
        assert c.post("/developers", json=body).status_code == 201
        assert c.post("/session", json={"email": body["email"], "password": PASSWORD}).is_success
        token = c.post("/tokens", json={"name": "st"}).json()["token"]["secret"]
        r = c.post(
            "/apps",
            json={"name": "S", "package": "com.example.st"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201
        return str(token)


def test_schemathesis_finds_no_server_error(
    server: Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_ADMIN_TOKEN", OP)
    server.start()
    url = server.api + "/api/v1/openapi.json"
    for token in (OP, developer_token(server.api)):
        out = subprocess.run(
            [
                str(ST),
                "run",
                url,
                "-H",
                f"Authorization: Bearer {token}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "10",
                "--seed",
                "5",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=100,
        )
        assert out.returncode == 0, out.stdout[-3000:]
        assert "generated" in out.stdout

"""The `tidings` command end to end: serve, app create, listen, send, and bad flags."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_crash import TIDINGS, Server, create_app, free_port, server  # noqa: F401
from tidings.core.models import NewApp


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TIDINGS, *args], capture_output=True, text=True, timeout=60)


def read_json_line(proc: subprocess.Popen[str], timeout: float = 15) -> dict:  # type: ignore[type-arg]
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip():
            return dict(json.loads(line))
    raise TimeoutError("no output from tidings listen")


def test_serve_listen_send(server: Server) -> None:  # noqa: F811
    server.start()
    app = create_app(server.data_dir)
    with subprocess.Popen(
        [
            *TIDINGS,
            "listen",
            "--gateway",
            server.gateway,
            "--app-id",
            app.app.app_id,
            "--app-key",
            app.app_key,
            "--package",
            app.app.package,
            "--alias",
            "al",
            "--topic",
            "news",
            "--account",
            "acc",
            "--consent-version",
            "v1",
            "--count",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as listen:
        _listen_and_send(server, app, listen)


def _listen_and_send(server: Server, app: NewApp, listen: subprocess.Popen[str]) -> None:  # noqa: F811
    try:
        first = read_json_line(listen)
        assert first["event"] == "registered" and first["reg_id"]
        commands = [read_json_line(listen) for _ in range(3)]
        assert {c["command"] for c in commands} == {"set-alias", "subscribe-topic", "set-account"}
        common = ["--api", server.api, "--secret", app.app_secret, "--package", app.app.package]
        sent = []
        for target in (["--regid", first["reg_id"]], ["--alias", "al"], ["--topic", "news"]):
            out = run(
                "send",
                *common,
                *target,
                "--title",
                "Hi",
                "--description",
                "There",
                "--extra",
                "k=v",
                "--notify-id",
                "3",
            )
            assert out.returncode == 0, out.stderr
            sent.append(json.loads(out.stdout)["data"]["id"])
        got = [read_json_line(listen) for _ in range(3)]
        assert [g["id"] for g in got] == sent
        assert got[0] == {
            "event": "message",
            "id": sent[0],
            "seq": 1,
            "pass_through": 0,
            "title": "Hi",
            "description": "There",
            "payload": "",
            "notify_id": 3,
            "notify_type": -1,
            "extra": {"k": "v"},
        }
        assert listen.wait(timeout=10) == 0
    finally:
        listen.kill()


def test_cli_bad_input(tmp_path: Path, server: Server) -> None:  # noqa: F811
    data = str(tmp_path / "d")
    assert (
        run(
            "app", "create", "--data-dir", data, "--name", "X", "--package", "not a package"
        ).returncode
        == 2
    )
    assert (
        run("app", "create", "--data-dir", data, "--name", "", "--package", "com.a.b").returncode
        == 2
    )
    ok = run("app", "create", "--data-dir", data, "--name", "X", "--package", "com.a.b")
    assert ok.returncode == 0 and set(json.loads(ok.stdout)) >= {
        "app_id",
        "app_key",
        "app_secret",
        "package",
    }
    dup = run("app", "create", "--data-dir", data, "--name", "X", "--package", "com.a.b")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    app_id = json.loads(ok.stdout)["app_id"]
    key = run("app", "receipt-key", "--data-dir", data, app_id)
    assert key.returncode == 0 and json.loads(key.stdout)["receipt_key"].startswith("whsec_")
    again = run("app", "receipt-key", "--data-dir", data, app_id)
    assert json.loads(again.stdout) == json.loads(key.stdout)  # stable until rotated
    assert run("app", "receipt-key", "--data-dir", data, "0000000000000").returncode == 1
    assert (
        run(
            "send",
            "--api",
            "http://127.0.0.1:1",
            "--secret",
            "s",
            "--package",
            "com.a.b",
            "--title",
            "t",
        ).returncode
        == 2
    )  # no target
    assert (
        run(
            "send",
            "--api",
            "http://127.0.0.1:1",
            "--secret",
            "s",
            "--package",
            "com.a.b",
            "--all",
            "--extra",
            "novalue",
        ).returncode
        == 2
    )
    unreachable = run(
        "send",
        "--api",
        "http://127.0.0.1:1",
        "--secret",
        "s",
        "--package",
        "com.a.b",
        "--all",
        "--title",
        "t",
        "--description",
        "d",
    )
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    for gateway in ("http://x", "ws://[bad", "ws://"):
        bad = run(
            "listen",
            "--gateway",
            gateway,
            "--app-id",
            "1",
            "--app-key",
            "k",
            "--package",
            "com.a.b",
        )
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, gateway
    listen_flags = ["--gateway", "ws://127.0.0.1:1", "--app-id", "1", "--app-key", "k"]
    negative = run("listen", *listen_flags, "--package", "com.a.b", "--count", "-1")
    assert negative.returncode == 2 and "--count" in negative.stderr  # it exited on message 1
    assert run("serve", "--port", "notaport").returncode == 2
    for flag, value in (("--port", "70000"), ("--gateway-port", "-1"), ("--host", "")):
        bad = run("serve", "--data-dir", data, flag, value)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, (flag, bad.stderr)
    bad = run("serve", "--data-dir", data, "--database-url", "mysql://u:s3cret@h/db")
    assert bad.returncode == 2 and "s3cret" not in bad.stderr + bad.stdout
    server.start()
    # one server per data directory: a second one would take sends its devices never see
    second = run("serve", "--data-dir", str(server.data_dir), "--port", "0", "--gateway-port", "0")
    assert second.returncode == 1 and "another tidings serve" in second.stderr
    assert oct(server.data_dir.stat().st_mode & 0o777) == "0o700"  # its owner's alone
    assert all(p.stat().st_mode & 0o077 == 0 for p in server.data_dir.glob("*.db*"))
    app = create_app(server.data_dir)
    device = ["--gateway", server.gateway, "--app-id", app.app.app_id, "--app-key", app.app_key]
    device += ["--package", app.app.package]
    assert run("listen", *device, "--log-level", "verbose").returncode == 2
    stuck = run("listen", *device, "--state", str(tmp_path / "no-such-dir" / "s.json"))
    assert stuck.returncode == 1 and "cannot write the device state" in stuck.stderr
    wrong = run(
        "send",
        "--api",
        server.api,
        "--secret",
        "wrong",
        "--package",
        app.app.package,
        "--all",
        "--title",
        "t",
        "--description",
        "d",
    )
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["code"] == 21301
    refused = run(
        "listen",
        "--gateway",
        server.gateway,
        "--app-id",
        app.app.app_id,
        "--app-key",
        "wrong",
        "--package",
        app.app.package,
    )
    assert refused.returncode == 2 and "22007" in refused.stderr


def test_send_to_something_that_is_not_the_sender_api() -> None:
    """A web server that is not Tidings (or a proxy's error page while Tidings is down)."""
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as web:
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                time.sleep(0.05)
            out = run(
                "send",
                "--api",
                f"http://127.0.0.1:{port}",
                "--secret",
                "s",
                "--package",
                "com.a.b",
                "--all",
                "--title",
                "t",
                "--description",
                "d",
            )
        finally:
            web.kill()
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "HTTP 501 without a sender API envelope" in out.stderr and out.stdout == ""

"""kill -9 the server during a run of accepted sends; every accepted message is still delivered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.helpers import Phone
from tests.ports import free_port
from tidings.core.models import App, NewApp
from tidings.residency import sqlite_path

TIDINGS = [sys.executable, "-m", "tidings.cli.main"]


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port, self.gateway_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}"

    def start(self) -> float:
        began = time.monotonic()
        self.proc = subprocess.Popen(
            [
                *TIDINGS,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--gateway-port",
                str(self.gateway_port),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = began + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api}/health", timeout=1).status_code == 200:
                    return time.monotonic() - began
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data")
    try:
        yield srv
    finally:
        srv.stop()


def create_app(data_dir: Path) -> NewApp:
    out = subprocess.run(
        [
            *TIDINGS,
            "app",
            "create",
            "--data-dir",
            str(data_dir),
            "--name",
            "C",
            "--package",
            "com.example.crash",
        ],
        check=True,
        capture_output=True,
    )
    info = json.loads(out.stdout)
    app = App(info["app_id"], "C", info["package"], "", "", None, 0)
    return NewApp(app, info["app_key"], info["app_secret"])


async def sender_loop(
    api: str,
    app: NewApp,
    regs: list[str],
    accepted: dict[str, set[str]],
    stop: asyncio.Event,
    worker: int,
) -> None:
    """Send until stopped; remember which ids were answered with code 0 and for whom."""
    async with httpx.AsyncClient(
        base_url=api, timeout=5, headers={"Authorization": f"key={app.app_secret}"}
    ) as http:
        i = 0
        while not stop.is_set():
            i += 1
            if i % 10 == 0:
                path, targets, params = "/v3/message/all", regs, {}
            else:
                targets = [regs[(worker + i) % len(regs)], regs[(worker + 2 * i) % len(regs)]]
                path, params = "/v3/message/regid", {"registration_id": ",".join(targets)}
            try:
                r = await http.post(
                    path,
                    data={
                        "restricted_package_name": app.app.package,
                        "title": f"w{worker}-{i}",
                        "description": "crash test",
                        **params,
                    },
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.01)
                continue
            body = r.json()
            if body.get("code") == 0:
                for reg in targets:
                    accepted[reg].add(body["data"]["id"])


@pytest.mark.parametrize("kill_after", [40, 400])
async def test_kill_9_loses_no_accepted_message(
    server: Server, tmp_path: Path, kill_after: int
) -> None:
    server.start()
    app = create_app(server.data_dir)
    phones = [Phone(server.gateway, app, state=tmp_path / f"p{i}.json") for i in range(4)]
    regs = []
    for p in phones:
        await p.start()
        regs.append(p.reg_id)
        await p.stop()
    accepted: dict[str, set[str]] = {r: set() for r in regs}
    stop = asyncio.Event()
    workers = [
        asyncio.ensure_future(sender_loop(server.api, app, regs, accepted, stop, w))
        for w in range(6)
    ]
    async with asyncio.timeout(60):
        while sum(map(len, accepted.values())) < kill_after:
            await asyncio.sleep(0.005)
    server.kill()  # mid-run: requests are in flight right now
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*workers)
    restart = server.start()
    print(f"restart took {restart:.2f}s")
    for name in ("control", "ROW"):
        with sqlite3.connect(sqlite_path(server.data_dir, name)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    phones = [Phone(server.gateway, app, state=tmp_path / f"p{i}.json") for i in range(4)]
    for p, reg in zip(phones, regs, strict=True):
        await p.start()
        assert p.reg_id == reg
        await p.wait(lambda p=p, reg=reg: accepted[reg] <= set(p.ids()), timeout=30)
        assert len(p.ids()) == len(set(p.ids()))  # the SDK let no duplicate through
        await p.stop()
    assert os.path.exists(sqlite_path(server.data_dir, "ROW"))


async def test_kill_9_with_log_broadcasts_unacked_comes_again(server: Server) -> None:
    """Broadcasts sent from the log to a connected device: what it had not acked when the server
    was killed comes again after the restart; what it acked (and was written) does not."""
    server.start()
    app = create_app(server.data_dir)

    async def register(ws: Any, uaid: str | None) -> tuple[str, str]:
        await ws.send(json.dumps({"messageType": "hello", **({"uaid": uaid} if uaid else {})}))
        got_uaid = json.loads(await ws.recv())["uaid"]
        frame = {
            "messageType": "app_register",
            "req": "1",
            "app_id": app.app.app_id,
            "app_key": app.app_key,
            "package": app.app.package,
            "features": ["log"],
        }
        await ws.send(json.dumps(frame))
        answer = json.loads(await ws.recv())
        assert answer["features"] == ["log"]
        return got_uaid, answer["reg_id"]

    async with websockets.connect(server.gateway) as ws:
        uaid, reg = await register(ws, None)
        async with httpx.AsyncClient(
            base_url=server.api, headers={"Authorization": f"key={app.app_secret}"}
        ) as http:
            ids = []
            for i in range(3):
                r = await http.post(
                    "/v3/message/all",
                    data={
                        "restricted_package_name": app.app.package,
                        "title": f"b{i}",
                        "description": "d",
                    },
                )
                ids.append(r.json()["data"]["id"])
        got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
        assert [(g["id"], g["log"]) for g in got] == list(zip(ids, [1, 2, 3], strict=True))
        update = {"reg_id": reg, "log": 1, "id": ids[0]}
        await ws.send(json.dumps({"messageType": "ack", "updates": [update]}))
        await asyncio.sleep(0.5)  # the cursor move is written within 0.1 s
        server.kill()
    server.start()
    async with websockets.connect(server.gateway) as ws:
        assert (await register(ws, uaid)) == (uaid, reg)
        back = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
        assert [b["id"] for b in back] == ids[1:]  # through the inbox now, with a seq
        assert all(b["seq"] > 0 for b in back)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.8)

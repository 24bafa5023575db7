"""Helpers for end-to-end tests: real nodes on free ports, SDK devices, Mi Push's Python SDK."""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from tidings import settings
from tidings.client.device import AppConfig, CommandResult, DeviceClient, PushMessage, Revoke
from tidings.clock import Clock
from tidings.core.models import NewApp
from tidings.node import Node

# xmpush-python 1.0.3 predates Python 3.10; this shim is what its users add (see docs/sender-api.md)
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from xmpush.base.APIConstants import Constants  # noqa: E402
from xmpush.base.APIHostSwitch import ServerSwitch  # noqa: E402


@contextlib.asynccontextmanager
async def running_node(
    data_dir: Path, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[Node]:
    conf = settings.load(
        env={},
        overrides={
            "data_dir": str(data_dir),
            "host": "127.0.0.1",
            "port": 0,
            "gateway_port": 0,
            **overrides,
        },
    )
    node = Node(conf, clock=clock)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def point_xmpush_at(node: Node) -> None:
    """Send Mi Push's SDK to this node (host override, plain http)."""
    Constants.host = f"127.0.0.1:{node.api_port}"
    Constants.use_http()
    ServerSwitch().specified.host = Constants.host


class Phone:
    """A device running the Tidings device SDK, recording what the app sees."""

    def __init__(
        self, node: Node | str, app: NewApp, state: Path | None = None, **cfg: Any
    ) -> None:
        self.app = app
        self.cfg = AppConfig(app.app.app_id, app.app_key, app.app.package, **cfg)
        self.messages: list[PushMessage] = []
        self.results: list[CommandResult] = []
        self.resyncs = 0
        self.revokes: list[Revoke] = []
        self.errors: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self.client = DeviceClient(
            node if isinstance(node, str) else node.urls()["gateway"],
            state_path=state,
            on_notification=self._got,
            on_pass_through=self._got,
            on_command_result=self._result,
            on_resync=self._resync,
            on_error=self.errors.append,
            on_revoke=self._revoked,
            backoff_base=0.05,
            backoff_max=0.5,
        )
        self.client.add_app(self.cfg)
        self._task: asyncio.Task[None] | None = None
        self.reg_id = ""

    def _got(self, msg: PushMessage) -> None:
        self.messages.append(msg)
        self._changed.set()

    def _result(self, res: CommandResult) -> None:
        self.results.append(res)
        self._changed.set()

    def _revoked(self, revoke: Revoke) -> None:
        self.revokes.append(revoke)
        self._changed.set()

    def _resync(self, app_id: str) -> None:
        self.resyncs += 1
        self._changed.set()

    async def start(self) -> Phone:
        self.results.clear()
        self._task = asyncio.ensure_future(self.client.run())
        self.reg_id = await self.client.wait_registered(self.cfg.app_id, timeout=10)
        wanted = len(self.cfg.aliases) + len(self.cfg.topics) + (1 if self.cfg.account else 0)
        await self.wait(lambda: len(self.results) >= wanted)
        return self

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.client._registered.clear()

    async def wait(self, cond: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[PushMessage]:
        await self.wait(lambda: len(self.messages) >= n, timeout)
        return self.messages

    def ids(self) -> list[str]:
        return [m.id for m in self.messages]


class RawDevice:
    """A device speaking the protocol by hand (to test acks, bad frames and redelivery)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, node: Node) -> AsyncIterator[RawDevice]:
        async with connect(node.urls()["gateway"], open_timeout=5) as ws:
            yield cls(ws)

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        return dict(json.loads(raw))

    async def hello(self, uaid: str | None = None) -> str:
        await self.send({"messageType": "hello", **({"uaid": uaid} if uaid else {})})
        return str((await self.recv())["uaid"])

    async def register(self, app: NewApp, **over: Any) -> dict[str, Any]:
        await self.send(
            {
                "messageType": "app_register",
                "req": "r",
                "app_id": app.app.app_id,
                "app_key": app.app_key,
                "package": app.app.package,
                **over,
            }
        )
        return await self.recv()

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        return self.ws.close_code

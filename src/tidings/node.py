"""A Tidings node: builds and owns the store, bus, hub, gateway and HTTP API, and runs them.

One ``Node`` is the embedded default: one process serving the sender API on ``port`` and the
device gateway on ``gateway_port`` with SQLite and the in-process bus. It opens the control store
and, for each region it serves, that region's store and a :class:`RegionStack` of services (see
:mod:`tidings.residency`). Nothing here is global; tests start as many nodes as they like on free
ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tidings import __version__
from tidings.api.admin import AdminApi
from tidings.api.management import PREFIX, ManagementApi
from tidings.api.management_routes import all_ops
from tidings.api.mipush import ERROR_HANDLERS, MiPushApi
from tidings.api.sender_app import SenderApp
from tidings.api.webpush import WebPushApi
from tidings.bus.base import Bus
from tidings.bus.local import LocalBus
from tidings.bus.presence import RedisPresence
from tidings.bus.redis import RedisBus
from tidings.clock import Clock
from tidings.compliance.moderation import ReviewDesk, ReviewService
from tidings.compliance.regions import DEFAULT_REGION
from tidings.core.models import NewApp
from tidings.core.receipts import ReceiptSender
from tidings.core.scheduler import Scheduler
from tidings.core.sending import SendService
from tidings.core.webpush_service import WebPushService
from tidings.errors import TidingsError
from tidings.gateway.hub import Hub
from tidings.gateway.server import Gateway
from tidings.region_stack import RegionStack
from tidings.residency import open_residency
from tidings.settings import Settings
from tidings.store.store import Store

log = logging.getLogger("tidings.node")


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the node's owner handles signals
        yield

    async def main_loop(self) -> None:
        # wait for stop() instead of uvicorn's wake-up every 0.1 s: there is no date header to
        # refresh and no request limit to check
        await self._stop.wait()

    def stop(self) -> None:
        self.should_exit = True
        self._stop.set()


def _lock(path: Path) -> int:
    """An exclusive lock on ``path``, held until the descriptor closes (the process ends)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class Node:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.residency = open_residency(settings, clock)
        self.control: Store = self.residency.control
        self.bus: Bus = LocalBus()
        self.presence: RedisPresence | None = None  # shared between nodes when the bus is
        if settings.bus_url:
            self.bus = bus = RedisBus(settings.bus_url, settings.bus_prefix)
            self.presence = RedisPresence(bus.redis, settings.bus_prefix, bus.node, self._here)
        self.stacks = {
            code: RegionStack(code, store, self.bus, settings)
            for code, store in self.residency.regional.items()
        }
        self.webpush = WebPushService(self.stack.store, self.bus, settings)
        self.hub = Hub(self.residency, settings, self.webpush)
        self.hub.presence = self.presence
        self.gateway = Gateway(self.hub, settings)
        self.desk = ReviewDesk([stack.review for stack in self.stacks.values()])
        self.management = ManagementApi(
            self.residency, settings, all_ops(), forget_device=self.hub.forget, review=self.desk
        )
        self.api_port = 0
        self.gateway_port = 0
        self._http: _Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._data_lock: int | None = None

    def _lock_data_dir(self, data_dir: str) -> None:
        """One server per SQLite data directory: a second one would accept sends whose devices
        are connected to the first, which never hears of them. (CLI commands still work
        beside the server.)"""
        path = Path(data_dir)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._data_lock = _lock(path / "serve.lock")
        except BlockingIOError:
            raise TidingsError(
                f"another tidings serve is using {data_dir}: one server per data directory"
            ) from None
        except OSError as exc:
            raise TidingsError(f"cannot use the data directory {data_dir}: {exc}") from exc

    @property
    def stack(self) -> RegionStack:
        """The services of the default region (where apps made without a developer live), or of
        the first region served: what one-region tools and tests work with."""
        return self.stacks.get(DEFAULT_REGION) or next(iter(self.stacks.values()))

    @property
    def store(self) -> Store:
        return self.stack.store

    @property
    def sender(self) -> SendService:
        return self.stack.sender

    @property
    def review(self) -> ReviewService:
        return self.stack.review

    @property
    def scheduler(self) -> Scheduler:
        return self.stack.scheduler

    @property
    def receipts(self) -> ReceiptSender:
        return self.stack.receipts

    async def create_app(
        self, name: str, package: str, privacy_policy_version: str | None = None
    ) -> NewApp:
        """An app of the bootstrap developer (as ``tidings app create`` makes), in its region."""
        return await self.management.accounts.create_app(
            await self.management.accounts.bootstrap_developer(),
            name,
            package,
            privacy_policy_version,
            "node",
        )

    def asgi_app(self) -> SenderApp:
        api = MiPushApi(self.control, self.stacks, self.settings, online=self._online)

        async def health(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "status": "ok",
                    "version": __version__,
                    "connections": len(self.gateway.connections),
                }
            )

        rest = Starlette(
            routes=[
                Route("/health", health),
                *api.routes(),  # reached only for methods the fast path does not take
                *AdminApi(self.desk, self.settings.admin_token).routes(),
                *WebPushApi(self.webpush).routes(),
                Mount(PREFIX, app=self.management.app()),
            ],
            exception_handlers=dict(ERROR_HANDLERS),
        )
        rest.router.redirect_slashes = False  # a path with a slash too many is not found (10020)
        return SenderApp(api, rest)

    def _here(self, reg_id: str) -> bool:
        """The device is connected to this node's gateway now."""
        slot = self.hub.slots.get(reg_id)
        return slot is not None and not slot.link.closed

    async def _online(self, reg_id: str) -> bool:
        """Presence: connected to this node, or (scale-out) to another live node."""
        if self.presence is not None:
            return await self.presence.online(reg_id)
        return self._here(reg_id)

    async def start(self) -> None:
        s = self.settings
        if not s.database_url:
            self._lock_data_dir(s.data_dir)
        await self.residency.start()
        self.bus.subscribe(self.hub.on_bus)
        self.bus.on_rescan(self.hub.rescan)
        await self.bus.start()
        if self.presence is not None:
            self.presence.start()
        self.hub.start()
        self.gateway_port = await self.gateway.start(s.host, s.gateway_port)
        sock = _bind(s.host, s.port)
        self.api_port = int(sock.getsockname()[1])
        if not s.public_url:  # push endpoints name the address the API listens on
            host = f"[{s.host}]" if ":" in s.host else s.host
            self.webpush.base_url = f"http://{host}:{self.api_port}"
        config = uvicorn.Config(
            self.asgi_app(),
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            proxy_headers=False,  # senders talk to us directly; no proxy header rewriting
            http="httptools",
            timeout_graceful_shutdown=5,
        )
        self._http = _Server(config)
        self._http_task = asyncio.get_running_loop().create_task(self._http.serve([sock]))
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise TidingsError("HTTP server stopped during start")
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        self._background = [loop.create_task(self._sweep_expired())]
        for stack in self.stacks.values():
            self._background.append(loop.create_task(stack.scheduler.run()))
            self._background.append(loop.create_task(stack.receipts.run()))

    async def stop(self) -> None:
        background, self._background = self._background, []
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self._http is not None and self._http_task is not None:
            self._http.stop()
            await self._http_task
        await self.gateway.close()
        await self.hub.close()
        for stack in self.stacks.values():
            await stack.receipts.close()
        if self.presence is not None:
            await self.presence.close()
        await self.bus.close()
        await self.residency.close()
        if self._data_lock is not None:
            os.close(self._data_lock)  # the lock goes with it
            self._data_lock = None

    async def _sweep_expired(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                for code, stack in self.stacks.items():
                    inbox, messages = await stack.store.sweep_expired()
                    if inbox or messages:
                        log.info("%s expired: %d inbox entries, %d messages", code, inbox, messages)
                    traces = await stack.store.sweep_stats(self.settings.stats_retention_days)
                    if traces:
                        log.info("%s expired: %d message traces", code, traces)
                ended = await self.management.states.finish_due_terminations()
                if ended:
                    log.info("terminated after notice: %s", ", ".join(ended))
                retention = self.settings.terminated_retention_days
                for reg_id in await self.management.states.erase_terminated(retention):
                    self.hub.forget(reg_id)
            except TidingsError as exc:
                log.warning("expiry sweep failed: %s", exc)

    def urls(self) -> dict[str, str]:
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        return {
            "api": f"http://{shown}:{self.api_port}",
            "gateway": f"ws://{shown}:{self.gateway_port}",
        }

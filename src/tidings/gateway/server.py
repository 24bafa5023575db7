"""The gateway server: listens for device sockets and runs one keepalive sweeper for all."""

from __future__ import annotations

import asyncio
import logging
import time

from tidings.gateway.connection import Connection
from tidings.gateway.hub import Hub
from tidings.protocol import codes
from tidings.settings import Settings

log = logging.getLogger("tidings.gateway")


class Gateway:
    def __init__(self, hub: Hub, settings: Settings) -> None:
        self.hub = hub
        self.settings = settings
        self.max_frame_bytes = settings.max_frame_bytes
        self.send_buffer_bytes = settings.send_buffer_bytes
        self.connections: set[Connection] = set()
        self.greeting: set[Connection] = set()  # connected, no hello yet
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), host, port, backlog=4096)
        self._sweeper = loop.create_task(self._sweep())
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def close(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        if self._server:
            self._server.close()
        for conn in list(self.connections):
            conn.close(codes.CLOSE_GOING_AWAY, "server shutting down")
        if self._server:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except TimeoutError:
                for conn in list(self.connections):
                    conn.abort()

    async def _sweep(self) -> None:
        """Keepalive for every connection, hello deadline for new ones.

        Only connections still waiting for their hello (a few) are looked at every
        ``hello_timeout_s / 4``; the pass over all of them (19,000 at a time on a busy node)
        runs every ``min(ping_interval_s, ping_timeout_s) / 4``.
        """
        s = self.settings
        ping, drop, hello = s.ping_interval_s, s.ping_timeout_s, s.hello_timeout_s
        every = max(0.05, min(ping, drop) / 4)
        step = min(every, max(0.05, hello / 4))
        last = time.monotonic()
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            for conn in list(self.greeting):
                conn.check_hello(now, hello)
            if now - last >= every - step / 2:
                last = now
                for conn in list(self.connections):  # the settings read once, not per connection
                    conn.tick(now, ping, drop)

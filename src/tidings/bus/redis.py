"""The bus across nodes: Redis publish/subscribe on one channel (``<prefix>:bus``).

Every node hands its own events to its own handlers at once (as the in-process bus does) and
publishes them for the other nodes. Redis is never the system of record: every event follows a
commit, so an event lost with Redis only delays a delivery. To bound that delay,

- a node whose subscription was cut (Redis restarted, the network failed) asks its handlers to
  **rescan** (look in the store for every device connected to it) once it is subscribed again;
- a node that could not publish an event (Redis down, or too slow to answer) sends a rescan notice
  once Redis takes its messages again, retrying on its own, and every node that hears it rescans.

A send never fails because Redis is down: it was committed, and answering an error would make
the sender send it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tidings.bus import codec
from tidings.bus.events import BusEvent
from tidings.bus.local import LocalBus

log = logging.getLogger("tidings.bus")

RETRY_S = (0.1, 0.2, 0.5, 1.0, 2.0)  # waits between attempts to subscribe again, then the last


class RedisBus:
    def __init__(self, url: str, prefix: str = "tidings") -> None:
        self.node = secrets.token_hex(8)
        self.channel = f"{prefix}:bus"
        self.redis = aioredis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=5
        )
        self._local = LocalBus()
        self._rescans: list[Callable[[], None]] = []
        self.missed = False  # an event of ours did not reach Redis: tell the others
        self._listener: asyncio.Task[None] | None = None
        self._notifier: asyncio.Task[None] | None = None  # sends the rescan notice
        self._closing = False
        self.subscribed = asyncio.Event()

    def subscribe(self, handler: Callable[[BusEvent], None]) -> None:
        self._local.subscribe(handler)

    def on_rescan(self, handler: Callable[[], None]) -> None:
        """Call ``handler`` when events may have been lost (see the module's text)."""
        self._rescans.append(handler)

    async def start(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def publish(self, event: BusEvent) -> None:
        await self._local.publish(event)
        await self._send(codec.encode(self.node, event))

    async def close(self) -> None:
        self._closing = True
        await stop_task(self._listener)
        await stop_task(self._notifier)
        await self._local.close()
        await self.redis.aclose()

    async def _send(self, data: bytes) -> None:
        try:
            await self.redis.publish(self.channel, data)
        except (RedisError, OSError) as exc:
            if not self.missed:
                log.warning("bus: cannot publish to Redis (%s); nodes will rescan", exc)
            self.missed = True
            if self._notifier is None or self._notifier.done():
                self._notifier = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        """Send the rescan notice as soon as Redis takes it (not only with our next event: there
        may be none for a long time)."""
        attempt = 0
        while self.missed and not self._closing:
            await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
            attempt += 1
            self.missed = False  # (a publish failing meanwhile sets it again: one more notice)
            try:
                await self.redis.publish(self.channel, codec.encode(self.node, None))
            except (RedisError, OSError) as exc:
                raise_if_cancelled(exc)
                self.missed = True

    async def _listen(self) -> None:
        attempt, first = 0, True
        while not self._closing:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if attempt:
                    log.info("bus: subscribed to Redis again")
                if not first:  # away for a while: what was published meanwhile is lost to us
                    self._rescan()
                first, attempt = False, 0
                async for message in pubsub.listen():
                    self._receive(message)
            except (RedisError, OSError) as exc:
                raise_if_cancelled(exc)
                self.subscribed.clear()
                if attempt == 0:
                    log.warning("bus: lost Redis (%s); retrying", exc)
                await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1
                first = False
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _receive(self, message: dict[str, object]) -> None:
        if message.get("type") != "message" or not isinstance(message.get("data"), bytes):
            return
        try:
            node, event = codec.decode(message["data"])  # type: ignore[arg-type]
        except ValueError as exc:
            log.warning("bus: dropped a message that is not one of ours: %s", exc)
            return
        if node == self.node:  # our own: our handlers had it when we published it
            return
        if event is None:
            self._rescan()
            return
        self._local.deliver(event)

    def _rescan(self) -> None:
        for handler in self._rescans:
            try:
                handler()
            except Exception:
                log.exception("bus rescan handler failed")


def raise_if_cancelled(exc: BaseException) -> None:
    """The Redis client may turn a cancellation in its I/O into a connection error: a task
    being cancelled stops then, instead of taking it for an outage and going on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it, a few seconds at most (the Redis client can
    swallow a cancellation; the task's loop then ends on its stop flag)."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), 5)

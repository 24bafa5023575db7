"""Which node holds each device, shared through Redis when several nodes serve one database.

The hash ``<prefix>:presence`` maps a regId to ``"<node> <connected_at ms>"``; each node keeps a
heartbeat key ``<prefix>:node:<node>`` that expires ``HEARTBEAT_TTL_S`` after its last beat, so
the devices of a node that died stop counting as online within that time.

Writes are guarded by the connection time (``connected_at``): a node's late "attached" never
overwrites a newer connection's entry, and its "detached" only removes its own entry, so a stale
node cannot clear a fresh connection made on another node. They are queued and written together
every ``FLUSH_S`` (a reconnect storm is a few pipelines, not a round trip per device); while Redis
is away they wait, the newest per device, and go when it is back. A beat that finds the node's key
gone (Redis restarted without its data, or the node was away longer than the TTL) writes every
device held here again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tidings.bus.redis import raise_if_cancelled, stop_task

log = logging.getLogger("tidings.bus")

FLUSH_S = 0.05
HEARTBEAT_S = 5.0
HEARTBEAT_TTL_S = 15

# KEYS[1] the hash; ARGV: regId, "node at", at. Set unless a newer connection is there.
_SET_IF_NEWER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local at = tonumber(string.match(cur, ' (%d+)$'))
  if at and at > tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
# KEYS[1] the hash; ARGV: regId, "node at". Remove only that very entry.
_DEL_IF_SAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


class RedisPresence:
    def __init__(
        self, client: aioredis.Redis, prefix: str, node: str, here: Callable[[str], bool]
    ) -> None:
        self.redis = client
        self.key = f"{prefix}:presence"
        self.node_key = f"{prefix}:node:"
        self.node = node
        self.here = here  # is the device connected to this node now
        self._values: dict[str, str] = {}  # regId -> our entry, for devices attached here
        self._pending: dict[str, tuple[bool, str]] = {}  # regId -> (attach?, entry), to write
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._set = self.redis.register_script(_SET_IF_NEWER)
        self._del = self.redis.register_script(_DEL_IF_SAME)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._stopping = True
        await stop_task(self._task)
        with contextlib.suppress(RedisError, OSError):  # gone now: do not wait for the TTL
            await self.redis.delete(self.node_key + self.node)

    def attached(self, reg_id: str) -> None:
        entry = f"{self.node} {int(time.time() * 1000)}"
        self._values[reg_id] = entry
        self._pending[reg_id] = (True, entry)

    def detached(self, reg_id: str) -> None:
        entry = self._values.pop(reg_id, None)
        if entry is not None:
            self._pending[reg_id] = (False, entry)

    async def online(self, reg_id: str) -> bool:
        """Connected here, or to a node that is alive and holds it."""
        if self.here(reg_id):
            return True
        try:
            entry = await self.redis.hget(self.key, reg_id)
            if entry is None:
                return False
            text = entry.decode() if isinstance(entry, bytes) else str(entry)
            node = text.split(" ", 1)[0]
            return node != self.node and bool(await self.redis.exists(self.node_key + node))
        except (RedisError, OSError) as exc:
            log.warning("presence: Redis unavailable (%s): answering for this node only", exc)
            return False

    async def _run(self) -> None:
        beat_at = 0.0
        while not self._stopping:
            try:
                if time.monotonic() >= beat_at:
                    key = self.node_key + self.node
                    if await self.redis.set(key, b"1", ex=HEARTBEAT_TTL_S, get=True) is None:
                        self._write_all()  # Redis lost our keys (restarted empty, say)
                    beat_at = time.monotonic() + HEARTBEAT_S
                await self._flush()
            except (RedisError, OSError) as exc:
                raise_if_cancelled(exc)
                log.warning("presence: cannot write to Redis (%s); retrying", exc)
                beat_at = 0.0  # beat as soon as it is back: it may have lost our keys
                await asyncio.sleep(1.0)
            await asyncio.sleep(FLUSH_S)

    def _write_all(self) -> None:
        """Write every device held here again (a newer change waiting for one is kept)."""
        for reg_id, entry in self._values.items():
            self._pending.setdefault(reg_id, (True, entry))

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for reg_id, (attach, entry) in batch.items():
                    if attach:
                        at = entry.rsplit(" ", 1)[1]
                        await self._set(keys=[self.key], args=[reg_id, entry, at], client=pipe)
                    else:
                        await self._del(keys=[self.key], args=[reg_id, entry], client=pipe)
                await pipe.execute()
        except BaseException:
            for reg_id, change in batch.items():  # not written: again, unless newer came
                self._pending.setdefault(reg_id, change)
            raise

"""Scheduled sends: a task that fires jobs whose ``time_to_send`` has come.

Jobs are rows in the store, so they survive restarts. Every ``poll_s`` the scheduler reads the
due jobs and fires each one: the store deletes the job row and commits the send in one
transaction, so when several nodes poll one database a job still fires exactly once, and a job
deleted first never fires. After the commit the gateways are told, as for any send.
"""

from __future__ import annotations

import asyncio
import logging

from tidings.bus.base import Bus
from tidings.bus.events import InboxChanged, LogAppended
from tidings.core.sending import SendService
from tidings.errors import StoreRefused, TidingsError
from tidings.store.store import Store

log = logging.getLogger("tidings.scheduler")


class Scheduler:
    def __init__(self, store: Store, bus: Bus, sender: SendService, poll_s: float = 0.25) -> None:
        self.store = store
        self.bus = bus
        self.sender = sender
        self.poll_s = poll_s
        self.fired = 0
        self.refused: set[str] = set()  # jobs the store cannot fire (StoreRefused), not retried

    async def run(self) -> None:
        while True:
            try:
                await self.fire_due()
            except TidingsError as exc:
                log.warning("scheduler pass failed: %s", exc)
            await asyncio.sleep(self.poll_s)

    async def fire_due(self) -> int:
        """Fire every job that is due now; return how many this node fired."""
        count = 0
        while True:
            page = 100 + len(self.refused)  # those left aside take no room
            due = await self.store.due_jobs(page)
            if not due:
                if count:
                    log.info("fired %d scheduled jobs", count)
                return count
            fresh = [job_id for job_id in due if job_id not in self.refused]
            for job_id in fresh:
                try:
                    fired = await self._fire(job_id)
                except StoreRefused as exc:  # it would fail every pass: the others go on
                    log.error("scheduled job %s cannot be fired, left aside: %s", job_id, exc)
                    self.refused.add(job_id)
                    continue
                count += fired
            if len(due) < page or not fresh:
                if count:
                    log.info("fired %d scheduled jobs", count)
                return count

    async def _fire(self, job_id: str) -> bool:
        fired = await self.store.fire_job(job_id)
        if fired is None:  # another node fired it, or it was deleted
            return False
        self.fired += 1
        job, message = fired.job, fired.job.message
        if fired.expired:
            log.info("scheduled job %s expired before it could fire: dropped", job.message.msg_id)
        elif not job.durable:  # TTL 0 / only_send_once: whoever is connected now
            if message.kind.is_broadcast:
                await self.sender.broadcast(message, durable=False)
            else:
                await self.sender.unicast(message, job.targets, durable=False)
        elif message.kind.is_broadcast:
            await self.bus.publish(LogAppended(message.app_id))
        elif fired.result is not None and fired.result.reg_ids:
            await self.bus.publish(InboxChanged(fired.result.reg_ids))
        return True

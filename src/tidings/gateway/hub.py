"""The gateway's delivery engine: which devices are connected here, and getting their inboxes out.

For every registered (device, app) on this node the hub keeps a :class:`Slot`: the link it is
connected on, the highest sequence number sent, and the messages sent but not yet acked (at most
``inflight_window``). It reacts to session events (register, commands, acks, clicks) and to bus
events (new inbox rows, log growth, TTL-0 messages). Unacked messages are sent again after
``ack_timeout_s`` and, after a reconnect, from the store. Acks are coalesced into one store
write per event-loop turn.

Devices that take broadcasts from the app log (``"features": ["log"]``) are, once caught up,
sent new broadcasts straight from the log (:meth:`Store.log_fanout`): no inbox row per device.
The slot remembers how far in the log it is (``log_at``) and what it sent unacked
(``log_inflight``); the device's durable cursor moves only with its acks, so what was not
acked comes again (after ``ack_timeout_s``, or from the store after a reconnect).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from tidings import ids
from tidings.bus.events import BusEvent, Ephemeral, InboxChanged, LogAppended, Revoked, WebPushed
from tidings.core.models import Delivery, DeviceInfo, LogEntry
from tidings.core.webpush_service import WebPushService
from tidings.errors import RegionNotServed, StoreRefused, TidingsError
from tidings.gateway.browsers import Browsers
from tidings.protocol import codes
from tidings.protocol.session import (
    Acked,
    AppCommand,
    AppRegister,
    AppUnregister,
    ChannelAcked,
    ChannelRegister,
    ChannelUnregister,
    Clicked,
    ConsentChange,
    DeviceSession,
    Event,
    Hello,
    log_frame,
    log_frame_tail,
)
from tidings.residency import Residency
from tidings.settings import Settings
from tidings.store.store import Store

log = logging.getLogger("tidings.gateway")

CATCH_UP_CHUNK = 1000  # devices per catch-up transaction when a broadcast reaches many
# devices per fan-out from the log: one store transaction that writes nothing per device, then
# the sends of all of them without yielding to the event loop. Yielding between smaller chunks
# handles the acks already coming back first (~25 µs each on this VM), which put the last device
# of a 19k broadcast ~0.4 s later; the cost is an event loop busy for the whole chunk (~20 µs per
# device here: 0.4 s at 19k), as a single-threaded broker is.
FAN_OUT_CHUNK = 20_000
# Log-cursor moves wait this long to be written together: under fan-out most devices ack within
# it, and one transaction then rewrites each page of cursors once (store/ack_pages.py).
MOVES_FLUSH_S = 0.1


class Presence(Protocol):
    """Tells other nodes which devices are connected here (:mod:`tidings.bus.presence`)."""

    def attached(self, reg_id: str) -> None: ...
    def detached(self, reg_id: str) -> None: ...


class Link(Protocol):
    """What the hub needs of a device connection."""

    session: DeviceSession
    closed: bool

    def flush(self) -> None: ...
    def send_text(self, payload: bytes) -> None: ...
    def close(self, code: int, reason: str) -> None: ...


# one app's log-cursor moves (reg_id -> (ack slot, cursor)) and the acked (reg_id, offset,
# msg_id) they pass
AppMoves = tuple[dict[str, tuple[int, int]], list[tuple[str, int, str]]]


def _moves_slot(moves: dict[str, AppMoves], slot: Slot) -> bool:
    """Whether these moves hold a cursor move of the slot's device."""
    app = moves.get(slot.app_id)
    return app is not None and slot.reg_id in app[0]


class Slot:
    __slots__ = (
        "ack_slot",
        "app_id",
        "catching",
        "caught",
        "fanning",
        "inflight",
        "link",
        "log_acked",
        "log_at",
        "log_inflight",
        "log_ok",
        "reg_id",
        "sent",
    )

    def __init__(self, reg_id: str, app_id: str, link: Link, log_ok: bool, ack_slot: int) -> None:
        self.reg_id = reg_id
        self.app_id = app_id
        self.ack_slot = ack_slot  # where the store keeps its log cursor (store/ack_pages.py)
        self.link = link
        self.sent = 0
        self.inflight: dict[int, tuple[float, Delivery]] = {}
        # broadcasts from the log: -1 until the device is caught up through its inbox, then the
        # log offset up to which it was sent (or skipped) what it is to get
        self.log_ok = log_ok
        self.log_at = -1
        self.log_inflight: dict[int, tuple[float, LogEntry]] = {}  # offset -> (sent at, entry)
        # acked, but an older entry is not yet: counted when the cursor passes them
        self.log_acked: list[tuple[int, str]] | None = None
        self.catching = 0  # inbox catch-ups running for it
        self.caught = 0  # the highest log head those reached
        self.fanning = False  # a log_fanout for it is running

    def log_cursor(self) -> int:
        """Where the device's durable log cursor may stand: before its oldest unacked entry."""
        if self.log_inflight:
            return min(self.log_inflight) - 1
        return self.log_at


class Hub:
    def __init__(
        self, residency: Residency, settings: Settings, webpush: WebPushService | None = None
    ) -> None:
        self.residency = residency
        self.browsers = Browsers(webpush) if webpush is not None else None
        self.presence: Presence | None = None  # shared presence (scale-out), set by the node
        self.accounts = residency.control.accounts
        self.clock = residency.control.clock
        self._stores: dict[str, Store] = {}  # app_id -> its region's store (apps registered here)
        self.window = settings.inflight_window
        self.ack_timeout = settings.ack_timeout_s
        self.slots: dict[str, Slot] = {}
        # each app's connected devices in the order they registered here (a dict, not a set: a
        # fan-out visits their slots and sockets in the order they were made)
        self.by_app: dict[str, dict[str, None]] = collections.defaultdict(dict)
        self.stats: collections.Counter[str] = collections.Counter()
        self._queues: dict[int, collections.deque[Event]] = {}
        self._pumping: set[str] = set()
        self._again: set[str] = set()
        self._acks: dict[Store, list[tuple[str, int, str]]] = {}
        # per app: the log cursors to persist (reg_id -> (ack slot, cursor)) and the acked
        # entries they pass ((reg_id, offset, msg_id)), written together by _flush_acks
        self._moves: dict[str, AppMoves] = {}
        self._flushing: dict[asyncio.Future[None], dict[str, AppMoves]] = {}  # its moves
        self._log_wait: set[str] = set()  # log-window full: fan out again when acks free room
        self._catch_up_apps: set[str] = set()
        self._catching_up = False
        self._flush_due = False
        self._moves_due: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None

    # lifecycle

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(self._redeliver_loop())

    async def close(self) -> None:
        if self._timer:
            self._timer.cancel()
        await self._flush_acks()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("gateway task failed: %s", exc, exc_info=exc)

    # connections

    def handle(self, link: Link, events: list[Event]) -> None:
        """Take the events of one frame. Each connection's events run in order, one at a time."""
        if len(events) == 1 and isinstance(events[0], Acked):
            self._on_ack(events[0])  # the common case: no await, no task
            return
        acked = events[-1]
        if isinstance(acked, ChannelAcked):
            # a browser's acks count even if it closes right after them (not queued behind
            # the connection's other events, which stop when it closes); before its hello is
            # answered (no uaid yet) they are dropped: what they name comes again
            events.pop()
            uaid = link.session.uaid
            if self.browsers is not None and uaid is not None:
                self._spawn(self.browsers.on_ack(link, uaid, list(acked.versions)))
            if not events:
                return
        key = id(link)
        queue = self._queues.get(key)
        if queue is not None:
            queue.extend(events)
            return
        queue = self._queues[key] = collections.deque(events)
        self._spawn(self._drain(link, queue))

    async def _drain(self, link: Link, queue: collections.deque[Event]) -> None:
        try:
            while queue and not link.closed:
                event = queue.popleft()
                try:
                    await self._on_event(link, event)
                except StoreRefused as exc:  # a value no store takes: trying again will not help
                    log.warning("device event %s refused: %s", type(event).__name__, exc)
                    link.close(codes.CLOSE_POLICY, "a value cannot be stored")
                except TidingsError as exc:
                    log.warning("device event %s failed: %s", type(event).__name__, exc)
                    link.close(codes.CLOSE_GOING_AWAY, "server error, retry later")
                except Exception:  # a bug: answer the device rather than leave it waiting
                    log.exception("device event %s failed", type(event).__name__)
                    link.close(codes.CLOSE_GOING_AWAY, "server error, retry later")
                link.flush()
        finally:
            self._queues.pop(id(link), None)

    def detach(self, link: Link) -> None:
        """The connection is gone: forget its slots; unacked messages stay in the store."""
        for reg_id in list(link.session.apps):
            self.detach_one(reg_id, link)
        if self.browsers is not None:
            self.browsers.detach(link)

    async def _on_event(self, link: Link, event: Event) -> None:
        if isinstance(event, Acked):
            self._on_ack(event)
        elif isinstance(event, Hello):
            await self._on_hello(link, event)
        elif isinstance(event, AppRegister):
            await self._on_register(link, event)
        elif isinstance(event, AppCommand):
            await self._on_command(link, event)
        elif isinstance(event, AppUnregister):
            await self._store(event.app_id).unregister_device(event.reg_id)
            self.detach_one(event.reg_id, link)
            link.session.unregister_done(event.req, event.reg_id)
        elif isinstance(event, Clicked):
            self.stats["clicks"] += 1
            await self._store(event.app_id).record_click(event.app_id, event.reg_id, event.msg_id)
        elif isinstance(event, ConsentChange):
            await self._on_consent(link, event)
        elif isinstance(event, ChannelRegister | ChannelUnregister):
            if self.browsers is None:
                link.close(codes.CLOSE_POLICY, "Web Push is not served here")
            else:
                await self.browsers.on_event(link, event)

    async def _on_hello(self, link: Link, event: Hello) -> None:
        uaid = event.uaid
        if uaid is None or not await self.residency.uaid_known(uaid):
            uaid = ids.uaid()  # only identities this server issued are honoured
            link.session.hello_ok(uaid)
            return
        link.session.hello_ok(uaid)
        if self.browsers is not None:
            await self.browsers.on_hello(link, uaid)

    async def _on_register(self, link: Link, ev: AppRegister) -> None:
        session = link.session
        try:
            found = await self.residency.app_store(ev.app_id)
        except RegionNotServed as exc:
            session.register_failed(ev.req, ev.app_id, codes.REGION_NOT_SERVED, exc.reason)
            return
        app, store = found if found is not None else (None, None)
        if app is None or store is None:
            session.register_failed(ev.req, ev.app_id, codes.BAD_APP_ID, "unknown app_id")
        elif not ids.secret_matches(ev.app_key, app.app_key_hash):
            session.register_failed(ev.req, ev.app_id, codes.BAD_APP_KEY, "wrong app_key")
        elif ev.package != app.package:
            session.register_failed(
                ev.req, ev.app_id, codes.BAD_PACKAGE, "package does not match the app"
            )
            await self.accounts.record_misuse(
                app.app_id, "device_package", f"package {ev.package!r} is not bound to this app"
            )
        elif (refusal := await self._refusal(app.app_id)) is not None:
            session.register_failed(ev.req, ev.app_id, codes.APP_BLOCKED, refusal)
        elif (too_old := await self._sdk_refusal(ev.info)) is not None:
            session.register_failed(ev.req, ev.app_id, codes.SDK_UNSUPPORTED, too_old)
        else:
            assert session.uaid is not None
            reg_id, ack_slot = await store.register(app.app_id, session.uaid, ev.info)
            if link.closed:  # gone meanwhile: its detach has run, so no slot may be left behind
                return
            session.register_ok(ev.req, app.app_id, reg_id, ev.log)
            self._stores[app.app_id] = store
            slot = self._attach(reg_id, app.app_id, link, ev.log, ack_slot)
            # acks of an earlier connection first: their cursor moves decide what comes again
            await self._register_catch_up(app.app_id, slot)
            self._spawn(self._pump(reg_id))  # everything pending, unacked ones included

    async def _refusal(self, app_id: str) -> str | None:
        """Why the app's devices may not register now (its developer is blocked), or None."""
        standing = await self.accounts.app_standing(app_id, 0)
        return standing[1] if standing is not None and standing[0] == "blocked" else None

    async def _sdk_refusal(self, info: DeviceInfo) -> str | None:
        """An upgrade reason when the device's SDK is below its policy's minimum, or None."""
        if not info.sdk_name:
            return None
        policy = await self.accounts.sdk_policy(info.sdk_name)
        return policy.refusal(info.sdk_version) if policy is not None else None

    def _store(self, app_id: str) -> Store:
        """The region store of an app registered on this node."""
        return self._stores[app_id]

    def _attach(self, reg_id: str, app_id: str, link: Link, log_ok: bool, ack_slot: int) -> Slot:
        old = self.slots.get(reg_id)
        if old is not None and old.link is not link:
            old.link.session.apps.pop(reg_id, None)  # the newest connection wins
        slot = self.slots[reg_id] = Slot(reg_id, app_id, link, log_ok, ack_slot)
        self.by_app[app_id][reg_id] = None
        if self.presence is not None:
            self.presence.attached(reg_id)
        return slot

    def detach_one(self, reg_id: str, link: Link) -> None:
        slot = self.slots.get(reg_id)
        if slot is not None and slot.link is link:
            del self.slots[reg_id]
            if self.presence is not None:
                self.presence.detached(reg_id)
            self._log_wait.discard(reg_id)
            members = self.by_app.get(slot.app_id)
            if members is not None:
                members.pop(reg_id, None)
                if not members:
                    del self.by_app[slot.app_id]

    def forget(self, reg_id: str) -> None:
        """Drop a device from this node at once (erasure): no slot, no longer usable on its link."""
        slot = self.slots.get(reg_id)
        if slot is not None:
            slot.link.session.apps.pop(reg_id, None)
            self.detach_one(reg_id, slot.link)

    async def _on_command(self, link: Link, ev: AppCommand) -> None:
        store, arg = self._store(ev.app_id), ev.arg  # the session checked the argument already
        if ev.command == "set-alias":
            await store.set_alias(ev.app_id, ev.reg_id, arg)
        elif ev.command == "unset-alias":
            await store.unset_alias(ev.app_id, ev.reg_id, arg)
        elif ev.command == "set-account":
            await store.set_account(ev.reg_id, arg)
        elif ev.command == "unset-account":
            await store.set_account(ev.reg_id, None)
        elif ev.command == "subscribe-topic":
            await store.subscribe(ev.app_id, [ev.reg_id], arg)
        else:
            await store.unsubscribe(ev.app_id, [ev.reg_id], arg)
        link.session.command_result(ev.req, ev.reg_id, ev.command, arg)

    async def _on_consent(self, link: Link, ev: ConsentChange) -> None:
        store = self._store(ev.app_id)
        rec = await store.record_consent(ev.reg_id, ev.version, ev.agreed, source="sdk")
        if rec is None:  # the device was erased or unregistered meanwhile
            link.session.consent_result(
                ev.req, ev.reg_id, ev.agreed, ev.version, codes.NOT_REGISTERED, "unknown reg_id"
            )
            return
        slot = self.slots.get(ev.reg_id)
        if not ev.agreed and slot is not None:
            self._drop_inflight(slot)  # withdrawn: nothing already sent is sent again
        link.session.consent_result(ev.req, ev.reg_id, ev.agreed, rec.policy_version)
        if ev.agreed:
            if slot is None:
                await store.catch_up(ev.app_id, [ev.reg_id])
            elif not slot.log_ok:  # in log mode the next fan-out checks consent again
                await self._inbox_catch_up(ev.app_id, [slot])
            self._spawn(self._pump(ev.reg_id))

    # acks

    def _flush_soon(self) -> None:
        """Write the acks (and cursor moves) collected in this event-loop turn once it is over."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(lambda: self._spawn(self._flush_acks()))

    def _flush_moves_soon(self) -> None:
        """Write the cursor moves collected within ``MOVES_FLUSH_S`` together."""
        if self._moves_due is None:
            self._moves_due = asyncio.get_running_loop().call_later(
                MOVES_FLUSH_S, lambda: self._spawn(self._flush_acks())
            )

    def _on_ack(self, ev: Acked) -> None:
        if ev.log_items:
            self._on_log_ack(ev.log_items)
            self._flush_moves_soon()
        if not ev.items:
            return
        self._flush_soon()
        wake = []
        for item in ev.items:
            reg_id, seq = item[0], item[1]
            slot = self.slots.get(reg_id)
            if slot is None:  # taken over meanwhile: acks are idempotent, tell every region
                for store in self.residency.regional.values():
                    self._acks.setdefault(store, []).append(item)
                continue
            self._acks.setdefault(self._store(slot.app_id), []).append(item)
            sent = slot.inflight.get(seq)
            if sent is None or (sent[1].msg_id or "") != item[2]:  # not what was sent: no ack
                continue
            del slot.inflight[seq]
            if len(slot.inflight) == self.window - 1:
                wake.append(reg_id)
        for reg_id in wake:
            self._spawn(self._pump(reg_id))

    def _on_log_ack(self, items: tuple[tuple[str, int, str], ...]) -> None:
        """Acks of log broadcasts: count each once and note the cursor move (flushed with acks)."""
        slots = self.slots
        for reg_id, offset, msg_id in items:
            slot = slots.get(reg_id)
            if slot is None:
                continue
            sent = slot.log_inflight.get(offset)
            if sent is None or sent[1].msg_id != msg_id:  # repeated, late or foreign: nothing
                continue
            del slot.log_inflight[offset]
            cursor = slot.log_cursor()
            moves = self._app_moves(slot.app_id)
            moves[0][reg_id] = (slot.ack_slot, cursor)
            if offset <= cursor and not slot.log_acked:  # in order: the common case
                moves[1].append((reg_id, offset, msg_id))
            else:
                if slot.log_acked is None:
                    slot.log_acked = []
                slot.log_acked.append((offset, msg_id))
                self._log_passed(slot)
            self._log_room(slot)

    def _drop_inflight(self, slot: Slot) -> None:
        """Nothing sent to the device and unacked is sent again (its consent went): the log
        cursor passes its log entries."""
        slot.inflight.clear()
        if slot.log_inflight:
            slot.log_inflight.clear()
            self._log_passed(slot)
            self._flush_moves_soon()

    def _log_passed(self, slot: Slot) -> None:
        """Note the slot's cursor move; count the acked entries it passes as delivered.

        An entry counts when the durable cursor passes it, not when it is acked: an entry acked
        before an older one comes again after a reconnect (the cursor stood before both) and
        counts then, once.
        """
        cursor = slot.log_cursor()
        moves = self._app_moves(slot.app_id)
        moves[0][slot.reg_id] = (slot.ack_slot, cursor)
        if slot.log_acked:
            waiting = []
            for offset, msg_id in slot.log_acked:
                if offset <= cursor:
                    moves[1].append((slot.reg_id, offset, msg_id))
                else:
                    waiting.append((offset, msg_id))
            slot.log_acked = waiting or None

    async def _flush_acks(self) -> None:
        self._flush_due = False
        if self._moves_due is not None:
            self._moves_due.cancel()
            self._moves_due = None
        acks, self._acks = self._acks, {}
        moves, self._moves = self._moves, {}
        if not acks and not moves:
            return
        done = asyncio.ensure_future(self._write_acks(acks, moves))
        self._flushing[done] = moves
        try:
            await done
        finally:
            del self._flushing[done]

    def _app_moves(self, app_id: str) -> AppMoves:
        moves = self._moves.get(app_id)
        if moves is None:
            moves = self._moves[app_id] = ({}, [])
        return moves

    async def _write_acks(
        self, acks: dict[Store, list[tuple[str, int, str]]], moves: dict[str, AppMoves]
    ) -> None:
        for store, items in acks.items():
            await store.ack(items)
            self.stats["acked"] += len(items)
        for app_id, (app_moves, delivered) in moves.items():
            await self._store(app_id).ack_log(app_id, app_moves, delivered)
            self.stats["acked"] += len(delivered)

    async def _settle_moves(self, slot: Slot) -> None:
        """Wait until the device's cursor moves noted so far are committed (only a device that
        was connected here before has any)."""
        if _moves_slot(self._moves, slot):
            await self._flush_acks()
        writes = [done for done, moved in self._flushing.items() if _moves_slot(moved, slot)]
        if writes:
            await asyncio.gather(*writes, return_exceptions=True)

    # delivery

    async def _pump(self, reg_id: str) -> None:
        """Send the device's pending inbox entries, up to the in-flight window."""
        if reg_id in self._pumping:
            self._again.add(reg_id)
            return
        self._pumping.add(reg_id)
        try:
            while True:
                self._again.discard(reg_id)
                slot = self.slots.get(reg_id)
                if slot is None or slot.link.closed:
                    return
                room = self.window - len(slot.inflight)
                if room <= 0:
                    return
                items = await self._store(slot.app_id).pending(reg_id, slot.sent, room)
                if self.slots.get(reg_id) is not slot or slot.link.closed:
                    return
                items = [d for d in items if d.seq > slot.sent]  # sent directly meanwhile
                self._send(slot, items)
                if items:
                    self.stats["sent"] += len(items)
                    slot.link.flush()
                if len(items) < room and reg_id not in self._again:
                    return
        finally:
            self._pumping.discard(reg_id)

    def on_bus(self, event: BusEvent) -> None:
        if isinstance(event, InboxChanged):
            if event.deliveries is not None:  # the rows came along: no store read
                self._deliver_new({r: d for r, d in event.deliveries.items() if r in self.slots})
                return
            for reg_id in event.reg_ids:
                if reg_id in self.slots:
                    self._spawn(self._pump(reg_id))
        elif isinstance(event, LogAppended):
            if event.app_id in self.by_app:
                if not self._catch_up_apps and not self._catching_up:
                    asyncio.get_running_loop().call_soon(
                        lambda: self._spawn(self._catch_up_connected())
                    )
                self._catch_up_apps.add(event.app_id)
        elif isinstance(event, Ephemeral):
            self._spawn(self._deliver_ephemeral(event))
        elif isinstance(event, Revoked):
            self._spawn(self._deliver_revoke(event))
        elif isinstance(event, WebPushed) and self.browsers is not None:
            self.browsers.on_pushed(event)

    def rescan(self) -> None:
        """The bus may have lost events (a broker outage): look in the store for every device
        connected here, as a bus event for each would have made it look."""
        log.info("rescanning %d devices after a bus outage", len(self.slots))
        for reg_id in list(self.slots):
            self._spawn(self._pump(reg_id))
        for app_id in list(self.by_app):
            self.on_bus(LogAppended(app_id))
        if self.browsers is not None:
            self._spawn(self.browsers.rescan())

    def _send(self, slot: Slot, items: list[Delivery]) -> None:
        now, now_ms = time.monotonic(), self.clock.now_ms()
        session = slot.link.session
        for d in items:
            if d.expires_at <= now_ms and not d.is_resync:
                continue  # expired since it was stored or read: the sweep reports it
            session.deliver(d)
            slot.inflight[d.seq] = (now, d)
        if items:
            slot.sent = max(slot.sent, items[-1].seq)

    async def _catch_up_connected(self) -> None:
        """Bring every connected device of the apps whose log grew up to date.

        One pass at a time: broadcasts that arrive meanwhile are taken by the next pass.
        """
        if self._catching_up:
            return
        self._catching_up = True
        try:
            while self._catch_up_apps:
                apps, self._catch_up_apps = self._catch_up_apps, set()
                for app_id in apps:
                    await self._catch_up_app(app_id)
        finally:
            self._catching_up = False

    async def _catch_up_app(self, app_id: str) -> None:
        """An app's connected devices, ``FAN_OUT_CHUNK`` at a time, each chunk decided when its
        turn comes (:meth:`_classify`): devices in log mode get the new broadcasts from the log
        (:meth:`_fan_out`), chunk after chunk; the others are caught up through their inboxes
        (:meth:`_inbox_catch_ups`) beside the later chunks' fan-outs."""
        reg_ids = list(self.by_app.get(app_id, ()))
        runs: list[asyncio.Future[None]] = []
        try:
            for i in range(0, len(reg_ids), FAN_OUT_CHUNK):
                live, positions, inbox = self._classify(reg_ids[i : i + FAN_OUT_CHUNK])
                if inbox:
                    runs.append(asyncio.ensure_future(self._inbox_catch_ups(app_id, inbox)))
                if live:
                    await self._fan_out(app_id, live, positions)
            if runs:
                await asyncio.gather(*runs)
        except BaseException:
            for run in runs:
                run.cancel()
            raise

    def _classify(self, reg_ids: list[str]) -> tuple[list[Slot], dict[str, int], list[Slot]]:
        """In one pass: the devices to fan out to now (marked ``fanning``) with where the gateway
        stands with each, and those to catch up through their inboxes. Those still being caught
        up on registration, or with a full log window, wait for that to end (``_log_wait``)."""
        slots, window, log_wait = self.slots, self.window, self._log_wait
        live: list[Slot] = []
        positions: dict[str, int] = {}
        inbox: list[Slot] = []
        for reg_id in reg_ids:
            slot = slots.get(reg_id)
            if slot is None or slot.link.closed:  # closing: its slots go once the socket is shut
                continue
            if slot.log_ok and slot.catching:
                log_wait.add(reg_id)  # its registration catches it up, then a fan-out
            elif slot.log_at < 0 or slot.catching:
                inbox.append(slot)
            elif slot.fanning or len(slot.log_inflight) >= window:
                log_wait.add(reg_id)  # fanned out again when that ends
            else:
                slot.fanning = True
                live.append(slot)
                positions[reg_id] = slot.log_at
        return live, positions, inbox

    async def _inbox_catch_ups(self, app_id: str, slots: list[Slot]) -> None:
        for i in range(0, len(slots), CATCH_UP_CHUNK):
            # those gone meanwhile are left out
            part = [s for s in slots[i : i + CATCH_UP_CHUNK] if self.slots.get(s.reg_id) is s]
            if part:
                await self._inbox_catch_up(app_id, part)

    async def _register_catch_up(self, app_id: str, slot: Slot) -> None:
        """Catch a device that just registered up through its inbox; it is in log mode after
        that if it asked for it. Nothing else catches it up or fans out to it meanwhile."""
        slot.catching += 1
        try:
            # an earlier connection's acks first: its cursor moves decide what comes again
            await self._settle_moves(slot)
            head, new = await self._store(app_id).catch_up_to(app_id, [slot.reg_id])
        finally:
            slot.catching -= 1
        self._caught_up([slot], head, new)

    async def _inbox_catch_up(self, app_id: str, slots: list[Slot]) -> None:
        """Copy what devices that do not take broadcasts from the log missed into their inboxes,
        and send it."""
        for slot in slots:
            slot.catching += 1
        try:
            store = self._store(app_id)
            head, new = await store.catch_up_to(app_id, [s.reg_id for s in slots])
        finally:
            for slot in slots:
                slot.catching -= 1
        self._caught_up(slots, head, new)

    def _caught_up(self, slots: list[Slot], head: int, new: dict[str, list[Delivery]]) -> None:
        for slot in slots:
            slot.caught = max(slot.caught, head)
            if slot.log_ok and not slot.catching and slot.log_at < 0:
                slot.log_at = slot.caught  # log mode: its cursor stands at the head
                if slot.reg_id in self._log_wait:  # a broadcast came meanwhile
                    self._log_wait.discard(slot.reg_id)
                    self._spawn(self._fan_out_one(slot))
        self._deliver_new(new)

    async def _fan_out_one(self, slot: Slot) -> None:
        if self.slots.get(slot.reg_id) is not slot or slot.log_at < 0:
            return
        if slot.fanning:
            self._log_wait.add(slot.reg_id)  # the running fan-out goes again when it ends
            return
        slot.fanning = True
        await self._fan_out(slot.app_id, [slot], {slot.reg_id: slot.log_at})

    async def _fan_out(self, app_id: str, slots: list[Slot], positions: dict[str, int]) -> None:
        """Send the devices (in log mode, marked ``fanning`` by the caller) the log broadcasts
        past where each stands (``positions``)."""
        try:
            head, new = await self._store(app_id).log_fanout(app_id, positions)
            again = self._send_log(app_id, slots, head, new)
        except BaseException:
            for slot in slots:  # none stays marked, whatever failed
                slot.fanning = False
            raise
        if self._moves:
            self._flush_moves_soon()
        for slot in again:
            self._spawn(self._fan_out_one(slot))

    def _send_log(
        self, app_id: str, slots: list[Slot], head: int, new: dict[str, list[LogEntry]]
    ) -> list[Slot]:
        """The fan-out's sends, in one pass without a yield; returns the devices a broadcast
        reached meanwhile (``_log_wait``) that can take it now."""
        now = time.monotonic()
        sent = 0
        again = []
        tails: dict[int, bytes] = {}  # each entry's frame but the regId, made once
        for slot in slots:
            slot.fanning = False
            reg_id = slot.reg_id
            if self.slots.get(reg_id) is not slot or slot.link.closed:
                continue
            entries = new.get(reg_id)
            advanced = head > slot.log_at
            if advanced:
                slot.log_at = head  # everything up to head was sent or is not for this device
            if entries:
                link, inflight = slot.link, slot.log_inflight
                for entry in entries:
                    tail = tails.get(entry.offset)
                    if tail is None:
                        tail = tails[entry.offset] = log_frame_tail(entry)
                    inflight[entry.offset] = (now, entry)
                if len(entries) == 1:  # the common case: its frame straight to the socket
                    link.send_text(log_frame(reg_id, entry, tails[entry.offset]))
                else:  # one write for all of them
                    session = link.session
                    for entry in entries:
                        session.deliver_log(reg_id, entry, tails[entry.offset])
                    link.flush()
                sent += len(entries)
            elif advanced and not slot.log_inflight:
                # skipped: the cursor may pass them
                self._app_moves(app_id)[0][reg_id] = (slot.ack_slot, slot.log_at)
            if reg_id in self._log_wait and len(slot.log_inflight) < self.window:
                self._log_wait.discard(reg_id)
                again.append(slot)
        self.stats["sent"] += sent
        return again

    def _deliver_new(self, new: dict[str, list[Delivery]]) -> None:
        """Send freshly committed entries straight away when they fit; else let the pump read."""
        sent = 0
        for reg_id, items in new.items():
            slot = self.slots.get(reg_id)
            if slot is None or slot.link.closed:
                continue
            fits = len(slot.inflight) + len(items) <= self.window
            if not items or not fits or reg_id in self._pumping or items[0].seq != slot.sent + 1:
                self._spawn(self._pump(reg_id))
                continue
            self._send(slot, items)
            slot.link.flush()
            sent += len(items)
        self.stats["sent"] += sent

    async def _connected_targets(self, ev: Ephemeral | Revoked) -> list[str]:
        """The devices connected here that an unstored message or a revoke is for."""
        if not ev.kind.is_broadcast:
            return [r for r in ev.reg_ids if r in self.slots]
        connected = list(self.by_app.get(ev.app_id, ()))
        if not connected:
            return []
        store = self._store(ev.app_id)
        return await store.topic_members(ev.app_id, connected, ev.kind, ev.topics, ev.topic_op)

    async def _deliver_ephemeral(self, ev: Ephemeral) -> None:
        regs = await self._connected_targets(ev)
        for reg_id in regs:
            slot = self.slots.get(reg_id)
            if slot is not None and not slot.link.closed:
                slot.link.session.deliver(Delivery(reg_id, 0, ev.msg_id, ev.body, 0))
                slot.link.flush()
        self.stats["sent_ephemeral"] += len(regs)

    async def _deliver_revoke(self, ev: Revoked) -> None:
        regs = await self._connected_targets(ev)
        for reg_id in regs:
            slot = self.slots.get(reg_id)
            if slot is not None and not slot.link.closed:
                slot.link.session.revoke(reg_id, ev.notify_id)
                slot.link.flush()
        self.stats["revoked"] += len(regs)

    async def _redeliver_loop(self) -> None:
        interval = max(0.05, min(self.ack_timeout / 2, 5.0))
        while True:
            await asyncio.sleep(interval)
            try:
                self._redeliver(time.monotonic(), self.clock.now_ms())
                await self._flush_acks()
            except TidingsError as exc:
                log.warning("redelivery pass failed: %s", exc)
            except Exception:  # a bug: the next pass must still come
                log.exception("redelivery pass failed")

    def _redeliver(self, now: float, now_ms: int) -> None:
        """Entries unacked for ``ack_timeout_s`` go again, each with its seq (or log offset) and
        id, but not from memory alone: one consent read per app first (:meth:`_redeliver_due`),
        so a device whose consent no longer holds (a withdrawal, or a new policy version that
        another process published: the gateway does not hear of it) gets nothing again."""
        due: dict[str, list[Slot]] = {}
        for slot in list(self.slots.values()):
            if slot.link.closed:
                continue
            if slot.log_inflight:
                self._expire_log(slot, now_ms)
            if slot.inflight:
                for seq, (_, d) in list(slot.inflight.items()):
                    if d.expires_at <= now_ms and not d.is_resync:
                        del slot.inflight[seq]  # expired messages are never delivered
                if len(slot.inflight) < self.window:
                    self._spawn(self._pump(slot.reg_id))
            if self._timed_out(slot.inflight, now) or self._timed_out(slot.log_inflight, now):
                due.setdefault(slot.app_id, []).append(slot)
        for app_id, slots in due.items():
            self._spawn(self._redeliver_due(app_id, slots, now))

    def _timed_out(self, inflight: dict[int, tuple[float, Any]], now: float) -> bool:
        return any(now - sent_at >= self.ack_timeout for sent_at, _ in inflight.values())

    def _expire_log(self, slot: Slot, now_ms: int) -> None:
        for offset, (_, entry) in list(slot.log_inflight.items()):
            if entry.expires_at <= now_ms:
                del slot.log_inflight[offset]  # expired: never delivered, the cursor passes it
                self._log_passed(slot)
        self._log_room(slot)

    def _log_room(self, slot: Slot) -> None:
        """A broadcast waits for the device's log window, and there is room now: send it."""
        if slot.reg_id in self._log_wait and len(slot.log_inflight) < self.window:
            self._log_wait.discard(slot.reg_id)
            self._spawn(self._fan_out_one(slot))

    async def _redeliver_due(self, app_id: str, slots: list[Slot], now: float) -> None:
        _, refused = await self._store(app_id).consent_filter(app_id, [s.reg_id for s in slots])
        barred = set(refused)
        for slot in slots:
            if self.slots.get(slot.reg_id) is not slot or slot.link.closed:
                continue
            if slot.reg_id in barred:  # as at a withdrawal
                self._drop_inflight(slot)
                self._log_room(slot)
                continue
            resent = 0
            for seq, (sent_at, d) in list(slot.inflight.items()):
                if now - sent_at >= self.ack_timeout:
                    slot.link.session.deliver(d)
                    slot.inflight[seq] = (now, d)
                    resent += 1
            for offset, (sent_at, entry) in list(slot.log_inflight.items()):
                if now - sent_at >= self.ack_timeout:
                    slot.link.session.deliver_log(slot.reg_id, entry)
                    slot.log_inflight[offset] = (now, entry)
                    resent += 1
            if resent:
                self.stats["redelivered"] += resent
                slot.link.flush()

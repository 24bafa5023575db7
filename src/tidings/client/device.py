"""The device SDK: one WebSocket to the gateway, any number of apps registered over it.

    client = DeviceClient("ws://127.0.0.1:8471", state_path="device.json",
                          on_notification=show, on_pass_through=handle)
    client.add_app(AppConfig(app_id, app_key, "com.example.app", aliases=["alice"]))
    await client.run()          # connects, registers, reconnects with backoff and jitter

The client keeps its identity (uaid and one regId per app) in a local state file, acks every
message after the callback returns, and drops duplicates by message id and ``extra.jobkey``, so
the app sees each message once although the gateway delivers at least once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import websockets
import websockets.uri
from websockets.asyncio.client import ClientConnection, connect

from tidings import __version__
from tidings.errors import ConfigError, TidingsError

log = logging.getLogger("tidings.client")

SEEN_LIMIT = 10_000
CLOSE_DO_NOT_RECONNECT = 4774  # Mozilla's push protocol: back off, do not reconnect
MAX_BACKOFF_DOUBLINGS = 32  # backoff_base × 2**32 is past any sensible backoff_max


@dataclasses.dataclass(frozen=True)
class AppConfig:
    app_id: str
    app_key: str
    package: str
    aliases: Sequence[str] = ()
    account: str | None = None
    topics: Sequence[str] = ()
    consent_version: str | None = None
    app_version: str = ""
    locale: str = ""
    model: str = ""


@dataclasses.dataclass(frozen=True)
class PushMessage:
    """A message as the app sees it (the fields of Mi Push's MiPushMessage)."""

    app_id: str
    reg_id: str
    id: str
    seq: int
    pass_through: int
    title: str
    description: str
    payload: str
    notify_type: int
    notify_id: int | None
    extra: dict[str, str]
    log: int = 0  # a broadcast sent from the app log: its offset there (``seq`` is then 0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CommandResult:
    app_id: str
    command: str
    args: list[str]
    code: int
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class ConsentResult:
    app_id: str
    agreed: bool
    version: str | None
    code: int
    reason: str = ""


class RegistrationError(TidingsError):
    def __init__(self, app_id: str, code: int, reason: str) -> None:
        super().__init__(f"registration of {app_id} refused: {code} {reason}")
        self.app_id, self.code, self.reason = app_id, code, reason


class GatewayProtocolError(TidingsError):
    """The gateway sent a frame the SDK cannot read: run() drops the connection and makes it
    again (with backoff) instead of stopping."""


class ReconnectRefused(TidingsError):
    """The gateway closed with 4774: back off and do not reconnect. run() stops with it."""


@dataclasses.dataclass(frozen=True)
class Revoke:
    """The server recalled the notification shown in slot ``notify_id`` of an app."""

    app_id: str
    notify_id: int


Callback = Callable[[Any], Awaitable[None] | None]


async def _call(cb: Callback | None, arg: Any) -> None:
    if cb is not None:
        result = cb(arg)
        if asyncio.iscoroutine(result):
            await result


class DeviceClient:
    def __init__(
        self,
        gateway_url: str,
        *,
        state_path: str | os.PathLike[str] | None = None,
        on_registered: Callback | None = None,
        on_notification: Callback | None = None,
        on_pass_through: Callback | None = None,
        on_command_result: Callback | None = None,
        on_resync: Callback | None = None,
        on_error: Callback | None = None,
        on_revoke: Callback | None = None,
        backoff_base: float = 0.2,
        backoff_max: float = 30.0,
    ) -> None:
        self.url = _checked_gateway_url(gateway_url)
        self.state_path = Path(state_path) if state_path else None
        self.on_registered = on_registered
        self.on_notification = on_notification
        self.on_pass_through = on_pass_through
        self.on_command_result = on_command_result
        self.on_resync = on_resync
        self.on_error = on_error
        self.on_revoke = on_revoke
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.apps: dict[str, AppConfig] = {}
        self.reg_ids: dict[str, str] = {}
        self.uaid: str | None = None
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._jobkeys: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._ws: ClientConnection | None = None
        self._closing = False
        self._wake = asyncio.Event()  # set by close(): ends a backoff sleep at once
        self._attempt: asyncio.Future[None] | None = None  # the connection being made or used
        self._registered: dict[str, asyncio.Future[str]] = {}
        self._pending: dict[str, asyncio.Future[CommandResult]] = {}
        self._consents: dict[str, asyncio.Future[ConsentResult]] = {}
        self._req = 0
        self._dirty = False
        self.connected = asyncio.Event()
        self._load_state()

    # configuration

    def add_app(self, app: AppConfig) -> None:
        self.apps[app.app_id] = app

    # state file

    def _load_state(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            state = _read_state(self.state_path)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable state file %s: %s", self.state_path, exc)
            return
        self.uaid = state.get("uaid")
        self.reg_ids = dict(state.get("reg_ids", {}))
        self._seen = collections.OrderedDict.fromkeys(state.get("seen", []))
        self._jobkeys = collections.OrderedDict.fromkeys(state.get("jobkeys", []))

    def save_state(self) -> None:
        if self.state_path is None:
            return
        state = {
            "uaid": self.uaid,
            "reg_ids": self.reg_ids,
            "seen": list(self._seen),
            "jobkeys": list(self._jobkeys),
        }
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        try:
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.state_path)
        except OSError as exc:  # not a lost connection: run() must not retry it quietly
            raise RuntimeError(f"cannot write the device state {self.state_path}: {exc}") from exc
        self._dirty = False

    # running

    async def run(self) -> None:
        """Stay connected until :meth:`close`; reconnect with exponential backoff and jitter."""
        attempt = 0
        self._closing = False
        self._wake.clear()
        while not self._closing:
            started = time.monotonic()
            self._attempt = attempt_task = asyncio.ensure_future(self._session())
            try:
                await attempt_task
            except asyncio.CancelledError:
                if not (self._closing and attempt_task.cancelled()):
                    raise  # run() itself was cancelled (close() cancels only the attempt)
            except RegistrationError:
                raise
            except GatewayProtocolError as exc:
                log.warning("dropping the connection to %s: %s", self.url, exc)
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                _stop_if_told_not_to_reconnect(exc)
                log.info("connection to %s lost: %s", self.url, exc)
            finally:
                self.connected.clear()
                self._ws = None
                _fail_waiting(self._pending)
                _fail_waiting(self._consents)
                self._forget_registrations()
            if self._closing:
                break
            # capped: 2**attempt grows past what a float holds after ~1000 failed tries
            attempt = (
                0 if time.monotonic() - started > 10 else min(attempt + 1, MAX_BACKOFF_DOUBLINGS)
            )
            delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._ws is not None:
            await self._ws.close()
        elif self._attempt is not None and not self._attempt.done():
            self._attempt.cancel()  # still opening (a host that does not answer): stop now
        if self._dirty:
            self.save_state()

    def _forget_registrations(self) -> None:
        """A regId holds on a live connection only: wait_registered() waits for the next
        registration (after an erasure it is a new regId)."""
        for app_id, fut in list(self._registered.items()):
            if fut.done() and fut.exception() is None:
                del self._registered[app_id]

    async def wait_registered(self, app_id: str, timeout: float = 10.0) -> str:
        fut = self._registered.setdefault(app_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    async def _session(self) -> None:
        async with connect(
            self.url,
            subprotocols=["push-notification"],  # type: ignore[list-item]
            open_timeout=10,
            max_size=2**20,
        ) as ws:
            self._ws = ws
            if self._closing:  # close() came while connecting: it saw no socket to close
                return
            hello: dict[str, Any] = {"messageType": "hello", "use_webpush": True}
            if self.uaid:
                hello["uaid"] = self.uaid
            await ws.send(json.dumps(hello))
            reply = _decode(await asyncio.wait_for(ws.recv(), 10))
            if reply.get("messageType") != "hello" or reply.get("status") != 200:
                raise websockets.InvalidMessage(f"bad hello reply: {reply}")
            uaid = _text(reply, "uaid")
            if uaid != self.uaid:
                self.uaid = uaid
                self.reg_ids.clear()
                self.save_state()
            for app in self.apps.values():
                await ws.send(json.dumps(self._register_frame(app)))
            self.connected.set()
            async for raw in ws:
                await self._on_frame(_decode(raw))

    def _next_req(self) -> str:
        self._req += 1
        return str(self._req)

    def _register_frame(self, app: AppConfig) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "messageType": "app_register",
            "req": self._next_req(),
            "app_id": app.app_id,
            "app_key": app.app_key,
            "package": app.package,
            "sdk": {"name": "tidings-python", "version": __version__},
            "features": ["log"],  # broadcasts may come from the app log, acked by offset
            "app_version": app.app_version,
            "device": {"locale": app.locale, "model": app.model},
        }
        if app.consent_version:
            frame["consent"] = {
                "version": app.consent_version,
                "agreed_at": time.time_ns() // 1_000_000,
            }
        return frame

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("messageType")
        if kind == "notification":
            await self._on_message(frame)
        elif kind == "resync":
            reg_id, seq = _text(frame, "reg_id"), _integer(frame, "seq")
            try:  # the app hears of the drop first; the marker is acked only then
                await _call(self.on_resync, self._app_of(reg_id))
            except Exception:  # the app failed: no ack, so the marker comes again later
                log.exception("resync callback failed for %s", reg_id)
                return
            await self._ack(reg_id, seq, "")
        elif kind == "app_register":
            await self._on_registered(frame)
        elif kind == "app_command":
            result = CommandResult(
                self._app_of(_text(frame, "reg_id")),
                _text(frame, "command"),
                _texts(frame, "args"),
                _integer(frame, "code"),
                _text(frame, "reason", ""),
            )
            fut = self._pending.pop(_text(frame, "req", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(result)
            await _call(self.on_command_result, result)
        elif kind == "consent":
            answer = ConsentResult(
                self._app_of(_text(frame, "reg_id")),
                _field(frame, "agreed", bool),
                _field(frame, "version", (str, type(None)), None),
                _integer(frame, "code"),
                _text(frame, "reason", ""),
            )
            done = self._consents.pop(_text(frame, "req", ""), None)
            if done is not None and not done.done():
                done.set_result(answer)
        elif kind == "revoke":
            revoke = Revoke(self._app_of(_text(frame, "reg_id")), _integer(frame, "notify_id"))
            await _call(self.on_revoke, revoke)
        elif kind == "error":
            refused = self._consents.pop(_text(frame, "req", ""), None)
            if refused is not None and not refused.done():
                refused.set_exception(ConnectionError(f"consent refused: {frame.get('reason')}"))
            log.warning("gateway error frame: %s", frame)
            await _call(self.on_error, frame)

    def _app_of(self, reg_id: str) -> str:
        return next((a for a, r in self.reg_ids.items() if r == reg_id), "")

    async def _on_registered(self, frame: dict[str, Any]) -> None:
        app_id = _text(frame, "app_id")
        if app_id not in self.apps:
            raise GatewayProtocolError(f"a registration answer for app {app_id!r}, not added")
        fut = self._registered.setdefault(app_id, asyncio.get_running_loop().create_future())
        if frame.get("status") != 200:
            err = RegistrationError(app_id, frame.get("code", -1), frame.get("reason", ""))
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # retrieved here, so an unawaited future does not warn
            await _call(self.on_error, frame)
            raise err  # a refused registration is permanent: stop instead of retrying
        reg_id = _text(frame, "reg_id")
        if self.reg_ids.get(app_id) != reg_id:
            self.reg_ids[app_id] = reg_id
            self.save_state()
        if not fut.done():
            fut.set_result(reg_id)
        app = self.apps[app_id]
        # the wanted aliases, account and topics are re-applied on every connection (idempotent)
        for alias in app.aliases:
            self._apply(reg_id, "set-alias", alias)
        if app.account:
            self._apply(reg_id, "set-account", app.account)
        for topic in app.topics:
            self._apply(reg_id, "subscribe-topic", topic)
        await _call(self.on_registered, (app_id, reg_id))

    def _apply(self, reg_id: str, command: str, arg: str) -> None:
        """A command of the AppConfig: nobody awaits its answer (on_command_result hears it), so
        a connection lost first must not leave a 'Future exception was never retrieved'."""
        self._send_command(reg_id, command, arg).add_done_callback(lambda f: f.exception())

    def _send_command(self, reg_id: str, command: str, arg: str) -> asyncio.Future[CommandResult]:
        req = self._next_req()
        fut: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        frame = {
            "messageType": "app_command",
            "req": req,
            "reg_id": reg_id,
            "command": command,
            "args": [arg],
        }
        if self._ws is None:
            fut.set_exception(ConnectionError("not connected"))
        else:
            task = asyncio.ensure_future(self._ws.send(json.dumps(frame)))
            task.add_done_callback(lambda t: t.exception())
        return fut

    async def command(
        self, app_id: str, command: str, arg: str, timeout: float = 10.0
    ) -> CommandResult:
        """Run a device command (set-alias, unset-alias, set-account, unset-account,
        subscribe-topic, unsubscribe-topic) and wait for its result."""
        reg_id = self.reg_ids.get(app_id)
        if reg_id is None or self._ws is None:
            raise ConnectionError(f"app {app_id} is not registered on a live connection")
        return await asyncio.wait_for(self._send_command(reg_id, command, arg), timeout)

    async def set_alias(self, app_id: str, alias: str) -> CommandResult:
        return await self.command(app_id, "set-alias", alias)

    async def unset_alias(self, app_id: str, alias: str) -> CommandResult:
        return await self.command(app_id, "unset-alias", alias)

    async def set_account(self, app_id: str, account: str) -> CommandResult:
        return await self.command(app_id, "set-account", account)

    async def unset_account(self, app_id: str, account: str) -> CommandResult:
        return await self.command(app_id, "unset-account", account)

    async def subscribe(self, app_id: str, topic: str) -> CommandResult:
        return await self.command(app_id, "subscribe-topic", topic)

    async def unsubscribe(self, app_id: str, topic: str) -> CommandResult:
        return await self.command(app_id, "unsubscribe-topic", topic)

    async def agree(self, app_id: str, version: str, timeout: float = 10.0) -> ConsentResult:
        """Record that the user agreed to privacy-policy ``version``; later registrations of
        this client send it too. Delivery for the app starts once the gateway has recorded it."""
        self.apps[app_id] = dataclasses.replace(self.apps[app_id], consent_version=version)
        return await self._consent(app_id, version, True, timeout)

    async def withdraw(self, app_id: str, timeout: float = 10.0) -> ConsentResult:
        """Withdraw the user's consent: the gateway stops delivering before the next send."""
        self.apps[app_id] = dataclasses.replace(self.apps[app_id], consent_version=None)
        return await self._consent(app_id, None, False, timeout)

    async def _consent(
        self, app_id: str, version: str | None, agreed: bool, timeout: float
    ) -> ConsentResult:
        reg_id = self.reg_ids.get(app_id)
        if reg_id is None or self._ws is None:
            raise ConnectionError(f"app {app_id} is not registered on a live connection")
        req = self._next_req()
        fut: asyncio.Future[ConsentResult] = asyncio.get_running_loop().create_future()
        self._consents[req] = fut
        frame = {
            "messageType": "consent",
            "req": req,
            "reg_id": reg_id,
            "version": version,
            "agreed": agreed,
        }
        await self._ws.send(json.dumps(frame))
        return await asyncio.wait_for(fut, timeout)

    async def click(self, message: PushMessage) -> None:
        """Report that the user opened a notification."""
        if self._ws is not None:
            await self._ws.send(
                json.dumps({"messageType": "click", "reg_id": message.reg_id, "id": message.id})
            )

    async def _on_message(self, frame: dict[str, Any]) -> None:
        body = _field(frame, "message", dict, {})
        reg_id, msg_id = _text(frame, "reg_id"), _text(frame, "id")
        seq, log_offset = _integer(frame, "seq", 0), _integer(frame, "log", 0)
        msg = PushMessage(
            app_id=self._app_of(reg_id),
            reg_id=reg_id,
            id=msg_id,
            seq=seq,
            pass_through=_integer(body, "pass_through", 0),
            title=_text(body, "title", ""),
            description=_text(body, "description", ""),
            payload=_text(body, "payload", ""),
            notify_type=_integer(body, "notify_type", -1),
            notify_id=_field(body, "notify_id", (int, type(None)), None),
            extra=_extra(body),
            log=log_offset,
        )
        jobkey = msg.extra.get("jobkey")
        duplicate = msg_id in self._seen or (jobkey is not None and jobkey in self._jobkeys)
        if not duplicate:
            try:
                await _call(self.on_pass_through if msg.pass_through else self.on_notification, msg)
            except Exception:  # the app failed: no ack, so the message comes again later
                log.exception("message callback failed for %s", msg_id)
                return
            _remember(self._seen, msg_id)
            if jobkey is not None:
                _remember(self._jobkeys, jobkey)
            self._dirty = True
        await self._ack(reg_id, seq, msg_id, log_offset)

    async def _ack(self, reg_id: str, seq: int, msg_id: str, log: int = 0) -> None:
        if self._ws is None:
            return
        if log > 0:
            update: dict[str, Any] = {"reg_id": reg_id, "log": log, "id": msg_id}
        elif seq > 0:
            update = {"reg_id": reg_id, "seq": seq, "id": msg_id}
        else:
            return  # an unstored (TTL 0) message: nothing to ack
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(json.dumps({"messageType": "ack", "updates": [update]}))


def _read_state(path: Path) -> dict[str, Any]:
    """The state file's content; ValueError when it is not what save_state() writes."""
    state = json.loads(path.read_text())
    if not isinstance(state, dict):
        raise ValueError("not a JSON object")
    reg_ids = state.get("reg_ids", {})
    valid = (
        isinstance(state.get("uaid"), str | None)
        and isinstance(reg_ids, dict)
        and _is_string_list(list(reg_ids.values()))
        and _is_string_list(state.get("seen", []))
        and _is_string_list(state.get("jobkeys", []))
    )
    if not valid:
        raise ValueError("not a device state (uaid, reg_ids, seen, jobkeys)")
    return state


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _stop_if_told_not_to_reconnect(exc: BaseException) -> None:
    if not isinstance(exc, websockets.ConnectionClosed) or exc.rcvd is None:
        return
    if exc.rcvd.code == CLOSE_DO_NOT_RECONNECT:
        raise ReconnectRefused(
            f"the gateway said not to reconnect: close {exc.rcvd.code} {exc.rcvd.reason}"
        ) from exc


def _checked_gateway_url(url: str) -> str:
    """A URL that can never work is an error now, not a reconnect loop for ever."""
    try:
        websockets.uri.parse_uri(url)
    except (websockets.InvalidURI, ValueError) as exc:
        raise ConfigError(f"gateway URL {url!r} is not a ws:// or wss:// URL: {exc}") from None
    return url


def _fail_waiting(answers: dict[str, asyncio.Future[Any]]) -> None:
    """The connection is lost: the answers waited for on it will not come."""
    for fut in answers.values():
        if not fut.done():
            fut.set_exception(ConnectionError("connection lost"))
    answers.clear()


def _remember(seen: collections.OrderedDict[str, None], key: str) -> None:
    seen[key] = None
    seen.move_to_end(key)
    while len(seen) > SEEN_LIMIT:
        seen.popitem(last=False)


# reading gateway frames: anything unexpected is a GatewayProtocolError, never a crash of run()

_REQUIRED: Any = object()


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        raise GatewayProtocolError(f"a frame that is not JSON: {raw[:80]!r}") from None
    if not isinstance(frame, dict):
        raise GatewayProtocolError(f"a frame that is not a JSON object: {raw[:80]!r}")
    return frame


def _field(
    frame: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _REQUIRED
) -> Any:
    value = frame.get(name, default)
    if (
        value is _REQUIRED
        or not isinstance(value, kind)
        or (isinstance(value, bool) and kind is int)
    ):
        raise GatewayProtocolError(
            f"{frame.get('messageType')} frame with a bad {name}: {value!r:.80}"
        )
    return value


def _text(frame: dict[str, Any], name: str, default: Any = _REQUIRED) -> str:
    return str(_field(frame, name, str, default))


def _integer(frame: dict[str, Any], name: str, default: Any = _REQUIRED) -> int:
    return int(_field(frame, name, int, default))


def _texts(frame: dict[str, Any], name: str) -> list[str]:
    values = _field(frame, name, list, [])
    if not all(isinstance(v, str) for v in values):
        raise GatewayProtocolError(f"{frame.get('messageType')} frame with a bad {name}")
    return list(values)


def _extra(body: dict[str, Any]) -> dict[str, str]:
    extra = _field(body, "extra", (dict, type(None)), None) or {}
    if not all(isinstance(v, str) for v in extra.values()):
        raise GatewayProtocolError("notification frame with an extra value that is not a string")
    return dict(extra)

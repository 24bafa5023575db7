"""The device protocol as a state machine with no I/O: text frames in, events and frames out.

A gateway connection feeds every received text frame to :meth:`DeviceSession.receive_text`,
hands the returned events to the delivery core, calls the answer methods (``hello_ok``,
``register_ok``, ``deliver``...) with what the core decided, and writes out whatever
:meth:`DeviceSession.frames_to_send` returns. No clock, no sockets, no database here.

The frames are those of Mozilla's push WebSocket protocol (``hello``, ``ack``, ``{}`` pings)
plus the Tidings extensions for apps described in ``docs/device-protocol.md``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, TypeGuard

import orjson

from tidings.core.limits import UNSTORABLE, check_command_arg, unstorable_text
from tidings.core.models import Delivery, DeviceInfo, LogEntry, WebPushMessage
from tidings.core.webpush import decode_key, valid_channel_id
from tidings.protocol import codes

MAX_ERRORS = 20  # bad frames tolerated on one connection before it is closed
MAX_APPS = 64  # app registrations on one connection
MAX_ACKS = 1000  # updates in one ack frame
MAX_INT = 2**63 - 1  # sequence numbers, log offsets, timestamps: 64-bit columns in both stores

COMMANDS = (
    "set-alias",
    "unset-alias",
    "set-account",
    "unset-account",
    "subscribe-topic",
    "unsubscribe-topic",
)


class State(enum.Enum):
    AWAIT_HELLO = "await_hello"
    READY = "ready"
    CLOSED = "closed"


# the states every frame is checked against, as plain names (an enum member lookup costs ~45 ns)
_AWAIT_HELLO, _CLOSED = State.AWAIT_HELLO, State.CLOSED


# --- events for the delivery core -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Hello:
    uaid: str | None


@dataclasses.dataclass(frozen=True)
class AppRegister:
    req: str
    app_id: str
    app_key: str
    package: str
    info: DeviceInfo
    log: bool = False  # the device takes broadcasts from the app log ("features": ["log"])


@dataclasses.dataclass(frozen=True)
class AppUnregister:
    req: str
    reg_id: str
    app_id: str


@dataclasses.dataclass(frozen=True)
class AppCommand:
    req: str
    reg_id: str
    app_id: str
    command: str
    arg: str


@dataclasses.dataclass(slots=True)  # not frozen: one per ack frame, frozen costs ~0.25 µs more
class Acked:
    items: tuple[tuple[str, int, str], ...]  # (reg_id, seq, msg_id or "" for resync)
    log_items: tuple[tuple[str, int, str], ...] = ()  # (reg_id, log offset, msg_id)


@dataclasses.dataclass(frozen=True)
class Clicked:
    reg_id: str
    app_id: str
    msg_id: str


@dataclasses.dataclass(frozen=True)
class ConsentChange:
    """The user agreed to a privacy-policy version (``agreed``) or withdrew consent."""

    req: str
    reg_id: str
    app_id: str
    version: str | None
    agreed: bool


@dataclasses.dataclass(frozen=True)
class ChannelRegister:
    """A browser subscribes (Web Push): ``key`` is its application server key, if it gave one."""

    channel_id: str
    key: bytes | None


@dataclasses.dataclass(frozen=True)
class ChannelUnregister:
    channel_id: str


@dataclasses.dataclass(frozen=True)
class ChannelAcked:
    """The browser has these Web Push messages (or gave up on them: a ``code`` other than 100
    says it could not decrypt or show one; it is not sent again either way)."""

    versions: tuple[str, ...]


Event = (
    Hello
    | AppRegister
    | AppUnregister
    | AppCommand
    | Acked
    | Clicked
    | ConsentChange
    | ChannelRegister
    | ChannelUnregister
    | ChannelAcked
)


def _dump(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def _str(obj: dict[str, Any], key: str, limit: int = 256, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise _BadFrame(codes.BAD_FRAME, f"{key} must be a non-empty string of at most {limit}")
    return value


class _BadFrame(Exception):
    def __init__(self, code: int, reason: str, req: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.req = req


class DeviceSession:
    """Protocol state of one device connection."""

    __slots__ = (
        "_out",
        "apps",
        "close_code",
        "close_reason",
        "errors",
        "registering",
        "state",
        "uaid",
    )

    def __init__(self) -> None:
        self.state = State.AWAIT_HELLO
        self.uaid: str | None = None
        self.apps: dict[str, str] = {}  # reg_id -> app_id, registered on this connection
        self.registering = 0  # app_register frames taken, not answered yet
        self.errors = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._out: list[bytes] = []

    # input

    def receive_text(self, text: str | bytes) -> list[Event]:
        """Parse one text frame (as text or as its UTF-8 bytes); return the events it produces
        (often none)."""
        if self.state is _CLOSED:
            return []
        try:
            obj = orjson.loads(text)  # ~4× json.loads on an ack frame; stricter (no NaN)
        except ValueError:
            self._error(codes.BAD_FRAME, "frame is not JSON")
            return []
        if not isinstance(obj, dict):
            self._error(codes.BAD_FRAME, "frame must be a JSON object")
            return []
        if not obj:  # {} is a ping
            self._out.append(b"{}")
            return []
        kind = obj.get("messageType")
        # U+0000 can only come as an escape (and orjson refuses lone surrogates): the walk only
        # when there is a backslash (byte 92: the fastest scan there is, ~10 ns), and not for a
        # hello (an unusable uaid is replaced)
        escaped = 92 in text if isinstance(text, bytes) else "\\" in text
        if escaped and kind != "hello" and unstorable_text(obj):
            self._error(codes.BAD_FRAME, UNSTORABLE)
            return []
        if self.state is _AWAIT_HELLO and kind != "hello":
            self._send_error(codes.HELLO_FIRST, "the first frame must be hello", None)
            self.close(codes.CLOSE_POLICY, "hello first")
            return []
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            self._error(codes.UNKNOWN_TYPE, f"unknown messageType {kind!r}")
            return []
        try:
            return handler(self, obj)
        except _BadFrame as bad:
            self._error(bad.code, bad.reason, bad.req)
            return []

    def receive_binary(self) -> None:
        self._error(codes.BAD_FRAME, "binary frames are not part of the protocol")

    # output

    def frames_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def has_output(self) -> bool:
        """Frames are waiting, or the session closed (its close frame is waiting)."""
        return bool(self._out) or self.state is _CLOSED

    def close(self, code: int, reason: str) -> None:
        if self.state is not State.CLOSED:
            self.state = State.CLOSED
            self.close_code = code
            self.close_reason = reason

    # answers from the core

    def hello_ok(self, uaid: str) -> None:
        self.uaid = uaid
        self.state = State.READY
        self._out.append(
            _dump(
                {
                    "messageType": "hello",
                    "uaid": uaid,
                    "status": 200,
                    "use_webpush": True,
                    "broadcasts": {},
                }
            )
        )

    def register_ok(self, req: str, app_id: str, reg_id: str, log: bool = False) -> None:
        self.registering = max(0, self.registering - 1)
        self.apps[reg_id] = app_id
        frame: dict[str, Any] = {
            "messageType": "app_register",
            "req": req,
            "status": 200,
            "code": 0,
            "app_id": app_id,
            "reg_id": reg_id,
        }
        if log:
            frame["features"] = ["log"]
        self._out.append(_dump(frame))

    def register_failed(self, req: str, app_id: str, code: int, reason: str) -> None:
        self.registering = max(0, self.registering - 1)
        self._out.append(
            _dump(
                {
                    "messageType": "app_register",
                    "req": req,
                    "status": 403,
                    "code": code,
                    "app_id": app_id,
                    "reason": reason,
                }
            )
        )

    def unregister_done(self, req: str, reg_id: str) -> None:
        self.apps.pop(reg_id, None)
        self._out.append(
            _dump(
                {
                    "messageType": "app_unregister",
                    "req": req,
                    "status": 200,
                    "code": 0,
                    "reg_id": reg_id,
                }
            )
        )

    def command_result(
        self, req: str, reg_id: str, command: str, arg: str, code: int = 0, reason: str = ""
    ) -> None:
        frame: dict[str, Any] = {
            "messageType": "app_command",
            "req": req,
            "reg_id": reg_id,
            "command": command,
            "args": [arg],
            "code": code,
        }
        if reason:
            frame["reason"] = reason
        self._out.append(_dump(frame))

    def consent_result(
        self,
        req: str,
        reg_id: str,
        agreed: bool,
        version: str | None,
        code: int = 0,
        reason: str = "",
    ) -> None:
        frame: dict[str, Any] = {
            "messageType": "consent",
            "req": req,
            "reg_id": reg_id,
            "agreed": agreed,
            "version": version,
            "code": code,
        }
        if reason:
            frame["reason"] = reason
        self._out.append(_dump(frame))

    def channel_registered(self, channel_id: str, endpoint: str) -> None:
        self._out.append(
            _dump(
                {
                    "messageType": "register",
                    "channelID": channel_id,
                    "status": 200,
                    "pushEndpoint": endpoint,
                }
            )
        )

    def channel_refused(self, channel_id: str, status: int, reason: str) -> None:
        self._out.append(
            _dump(
                {
                    "messageType": "register",
                    "channelID": channel_id,
                    "status": status,
                    "reason": reason,
                }
            )
        )

    def channel_unregistered(self, channel_id: str) -> None:
        self._out.append(
            _dump({"messageType": "unregister", "channelID": channel_id, "status": 200})
        )

    def notify_channel(self, msg: WebPushMessage) -> None:
        """A Web Push message, as a browser's push client takes it."""
        frame: dict[str, Any] = {
            "messageType": "notification",
            "channelID": msg.channel_id,
            "version": msg.version,
        }
        if msg.data is not None:
            frame["data"] = msg.data
            frame["headers"] = msg.headers
        self._out.append(_dump(frame))

    def deliver(self, d: Delivery) -> None:
        self._out.append(delivery_frame(d))

    def queue(self, frame: bytes) -> None:
        """A frame made elsewhere (:func:`log_frame`), sent with the next output."""
        self._out.append(frame)

    def deliver_log(self, reg_id: str, entry: LogEntry, tail: bytes = b"") -> None:
        """``tail``: the entry's :func:`log_frame_tail`, when the caller made it once for many
        devices (a fan-out)."""
        self._out.append(log_frame(reg_id, entry, tail))

    def revoke(self, reg_id: str, notify_id: int) -> None:
        """Tell the device to take down the notification shown in slot ``notify_id``.

        Only for an app registered on this connection; the device does not ack it.
        """
        if reg_id in self.apps and self.state is not State.CLOSED:
            self._out.append(
                _dump({"messageType": "revoke", "reg_id": reg_id, "notify_id": notify_id})
            )

    # internals

    def _send_error(self, code: int, reason: str, req: str | None) -> None:
        frame: dict[str, Any] = {
            "messageType": "error",
            "status": 400,
            "code": code,
            "reason": reason,
        }
        if req is not None:
            frame["req"] = req
        self._out.append(_dump(frame))

    def _error(self, code: int, reason: str, req: str | None = None) -> None:
        self.errors += 1
        self._send_error(code, reason, req)
        if self.errors >= MAX_ERRORS:
            self.close(codes.CLOSE_POLICY, "too many bad frames")

    def _registered(self, obj: dict[str, Any], req: str | None) -> tuple[str, str]:
        reg_id = obj.get("reg_id")
        if not isinstance(reg_id, str) or reg_id not in self.apps:
            raise _BadFrame(
                codes.NOT_REGISTERED, "reg_id is not registered on this connection", req
            )
        return reg_id, self.apps[reg_id]

    def _on_hello(self, obj: dict[str, Any]) -> list[Event]:
        if self.state is not State.AWAIT_HELLO:
            raise _BadFrame(codes.BAD_FRAME, "hello was already received")
        # taken: frames sent right behind it are not "before hello" (the core answers it and
        # them in order)
        self.state = State.READY
        uaid = obj.get("uaid")
        if uaid is not None and (
            not isinstance(uaid, str) or not 1 <= len(uaid) <= 128 or "\x00" in uaid
        ):
            uaid = None  # an unusable uaid gets a fresh one, as Mozilla's service does
        return [Hello(uaid or None)]

    def _on_app_register(self, obj: dict[str, Any]) -> list[Event]:
        req = _req(obj)
        try:
            sdk, device, consent = (
                {} if obj.get(k) is None else obj[k] for k in ("sdk", "device", "consent")
            )
            if not all(isinstance(x, dict) for x in (sdk, device, consent)):
                raise _BadFrame(codes.BAD_FRAME, "sdk, device and consent must be objects")
            agreed_at = consent.get("agreed_at")
            if agreed_at is not None and not _is_int(agreed_at, 0):
                raise _BadFrame(codes.BAD_FRAME, "consent.agreed_at must be epoch milliseconds")
            info = DeviceInfo(
                sdk_name=_str(sdk, "name", 64, required=False),
                sdk_version=_str(sdk, "version", 32, required=False),
                app_version=_str(obj, "app_version", 64, required=False),
                locale=_str(device, "locale", 32, required=False),
                model=_str(device, "model", 64, required=False),
                consent_version=_str(consent, "version", 64, required=False) or None,
                consent_at=agreed_at,
            )
            features = obj.get("features") or []
            if not isinstance(features, list) or len(features) > 16:
                raise _BadFrame(codes.BAD_FRAME, "features must be a list of at most 16 strings")
            if not all(isinstance(f, str) for f in features):
                raise _BadFrame(codes.BAD_FRAME, "features must be a list of at most 16 strings")
            if len(self.apps) + self.registering >= MAX_APPS:
                raise _BadFrame(codes.TOO_MANY_APPS, "too many apps on one connection")
            event = AppRegister(
                req,
                _str(obj, "app_id", 64),
                _str(obj, "app_key", 128),
                _str(obj, "package", 256),
                info,
                "log" in features,  # unknown features are ignored
            )
            self.registering += 1  # until register_ok / register_failed
            return [event]
        except _BadFrame as bad:
            bad.req = req
            raise

    def _on_app_unregister(self, obj: dict[str, Any]) -> list[Event]:
        req = _req(obj)
        reg_id, app_id = self._registered(obj, req)
        return [AppUnregister(req, reg_id, app_id)]

    def _on_app_command(self, obj: dict[str, Any]) -> list[Event]:
        req = _req(obj)
        reg_id, app_id = self._registered(obj, req)
        command = obj.get("command")
        if command not in COMMANDS:
            raise _BadFrame(codes.UNKNOWN_COMMAND, f"unknown command {command!r}", req)
        args = obj.get("args")
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], str):
            raise _BadFrame(codes.BAD_FRAME, "args must be a list with one string", req)
        problem = check_command_arg(str(command), args[0])
        if problem is not None:
            self.command_result(req, reg_id, str(command), args[0][:256], *problem)
            return []
        return [AppCommand(req, reg_id, app_id, str(command), args[0])]

    def _on_consent(self, obj: dict[str, Any]) -> list[Event]:
        req = _req(obj)
        reg_id, app_id = self._registered(obj, req)
        agreed = obj.get("agreed")
        if not isinstance(agreed, bool):
            raise _BadFrame(codes.BAD_FRAME, "agreed must be true or false", req)
        version = obj.get("version")
        if version is not None and (not isinstance(version, str) or not 1 <= len(version) <= 64):
            raise _BadFrame(codes.BAD_FRAME, "version must be a string of 1..64", req)
        if agreed and version is None:
            raise _BadFrame(codes.BAD_FRAME, "agreeing needs the policy version", req)
        return [ConsentChange(req, reg_id, app_id, version, agreed)]

    def _on_ack(self, obj: dict[str, Any]) -> list[Event]:
        updates = obj.get("updates")
        if not isinstance(updates, list) or len(updates) > MAX_ACKS:
            raise _BadFrame(codes.BAD_FRAME, f"updates must be a list of at most {MAX_ACKS}")
        items = []
        logs = []
        versions: list[str] = []
        for u in updates:
            if not isinstance(u, dict):
                raise _BadFrame(codes.BAD_FRAME, "each update must be an object")
            reg_id, msg_id = u.get("reg_id"), u.get("id", "")
            if not isinstance(reg_id, str) or reg_id not in self.apps:
                if reg_id is None and "channelID" in u:  # a browser's (Web Push)
                    versions.append(_version(u))
                    continue
                raise _BadFrame(codes.NOT_REGISTERED, "ack for a reg_id not registered here")
            if not isinstance(msg_id, str):
                raise _BadFrame(codes.BAD_FRAME, "id must be a string")
            offset = u.get("log")
            if offset is not None:  # a broadcast sent from the app log (checks inline: hot)
                if type(offset) is not int or not 0 < offset <= MAX_INT:
                    raise _BadFrame(codes.BAD_FRAME, "log must be a positive 64-bit integer")
                logs.append((reg_id, offset, msg_id))
                continue
            seq = u.get("seq")
            if type(seq) is not int or not 0 <= seq <= MAX_INT:
                raise _BadFrame(codes.BAD_FRAME, "seq must be a non-negative 64-bit integer")
            if seq > 0:  # seq 0 marks an unstored (TTL 0) message: nothing to ack
                items.append((reg_id, seq, msg_id))
        events: list[Event] = [Acked(tuple(items), tuple(logs))] if items or logs else []
        if versions:
            events.append(ChannelAcked(tuple(versions)))
        return events

    def _on_nack(self, obj: dict[str, Any]) -> list[Event]:
        """A browser could not handle a Web Push message: it is not sent again."""
        return [ChannelAcked((_version(obj),))]

    def _on_register(self, obj: dict[str, Any]) -> list[Event]:
        channel_id = obj.get("channelID")
        if not valid_channel_id(channel_id):
            raise _BadFrame(codes.BAD_FRAME, "channelID must be a UUID")
        key = obj.get("key")
        try:
            raw = None if key is None else decode_key(key)
        except ValueError as exc:
            self.channel_refused(str(channel_id), 400, f"key: {exc}")
            return []
        return [ChannelRegister(str(channel_id).lower(), raw)]  # a UUID: any case, one channel

    def _on_unregister(self, obj: dict[str, Any]) -> list[Event]:
        channel_id = obj.get("channelID")
        if not valid_channel_id(channel_id):
            raise _BadFrame(codes.BAD_FRAME, "channelID must be a UUID")
        return [ChannelUnregister(str(channel_id).lower())]

    def _on_click(self, obj: dict[str, Any]) -> list[Event]:
        reg_id, app_id = self._registered(obj, None)
        return [Clicked(reg_id, app_id, _str(obj, "id", 64))]


def _is_int(value: object, low: int) -> TypeGuard[int]:
    """A JSON integer from ``low`` up to what a 64-bit store column holds (not a bool)."""
    return type(value) is int and low <= value <= MAX_INT


def _version(obj: dict[str, Any]) -> str:
    version = obj.get("version")
    if not isinstance(version, str) or not 1 <= len(version) <= 64:
        raise _BadFrame(codes.BAD_FRAME, "version must be a string of 1..64 characters")
    return version


def _req(obj: dict[str, Any]) -> str:
    req = obj.get("req", "")
    if isinstance(req, int) and not isinstance(req, bool):
        req = str(req)
    if not isinstance(req, str) or len(req) > 64:
        raise _BadFrame(codes.BAD_FRAME, "req must be a string of at most 64 characters")
    return req


def delivery_frame(d: Delivery) -> bytes:
    """The frame for one inbox entry; the message body is stored as ready-made JSON."""
    if d.msg_id is None:
        return f'{{"messageType":"resync","reg_id":"{d.reg_id}","seq":{d.seq},"id":""}}'.encode()
    return (
        f'{{"messageType":"notification","reg_id":"{d.reg_id}","seq":{d.seq},'
        f'"id":"{d.msg_id}","message":{d.body}}}'
    ).encode()


_LOG_HEAD = b'{"messageType":"notification","reg_id":"'


def log_frame_tail(entry: LogEntry) -> bytes:
    """What follows the regId in the frame of a broadcast sent from the app log (``log``, its
    offset, instead of ``seq``): the same for every device, so a fan-out makes it once."""
    return f'","log":{entry.offset},"id":"{entry.msg_id}","message":{entry.body}}}'.encode()


def log_frame(reg_id: str, entry: LogEntry, tail: bytes = b"") -> bytes:
    """The frame for a broadcast sent from the app log to one device (``tail``: the entry's
    :func:`log_frame_tail`, if made already)."""
    return _LOG_HEAD + reg_id.encode() + (tail or log_frame_tail(entry))


_HANDLERS = {
    "hello": DeviceSession._on_hello,
    "app_register": DeviceSession._on_app_register,
    "app_unregister": DeviceSession._on_app_unregister,
    "app_command": DeviceSession._on_app_command,
    "ack": DeviceSession._on_ack,
    "click": DeviceSession._on_click,
    "consent": DeviceSession._on_consent,
    # Web Push (browsers)
    "register": DeviceSession._on_register,
    "unregister": DeviceSession._on_unregister,
    "nack": DeviceSession._on_nack,
    "broadcast_subscribe": lambda session, obj: [],  # browsers' own feature: not offered here
}

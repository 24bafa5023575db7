"""The records the delivery core works with: apps, devices, messages, deliveries."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
from typing import Any


class TargetKind(enum.StrEnum):
    REGID = "regid"
    ALIAS = "alias"
    ACCOUNT = "user_account"
    TOPIC = "topic"
    MULTI_TOPIC = "multi_topic"
    ALL = "all"

    @property
    def is_broadcast(self) -> bool:
        return self in (TargetKind.TOPIC, TargetKind.MULTI_TOPIC, TargetKind.ALL)


class TopicOp(enum.StrEnum):
    UNION = "UNION"
    INTERSECTION = "INTERSECTION"
    EXCEPT = "EXCEPT"


@dataclasses.dataclass(frozen=True)
class App:
    app_id: str
    name: str
    package: str
    app_key_hash: str
    secret_hash: str
    privacy_policy_version: str | None
    created_at: int
    region: str = "ROW"  # where the app's devices, messages and records live


@dataclasses.dataclass(frozen=True)
class NewApp:
    """An app just created: the only time its AppKey and AppSecret exist in clear."""

    app: App
    app_key: str
    app_secret: str

    @classmethod
    def generate(
        cls,
        name: str,
        package: str,
        privacy_policy_version: str | None,
        now: int,
        region: str = "ROW",
    ) -> NewApp:
        """A new AppID with fresh random credentials; only their hashes go into the App."""
        from tidings import ids

        key, secret = ids.app_key(), ids.app_secret()
        app = App(
            app_id=ids.app_id(),
            name=name,
            package=package,
            app_key_hash=ids.secret_hash(key),
            secret_hash=ids.secret_hash(secret),
            privacy_policy_version=privacy_policy_version,
            created_at=now,
            region=region,
        )
        return cls(app, key, secret)

    def public(self) -> dict[str, Any]:
        return {
            "app_id": self.app.app_id,
            "app_key": self.app_key,
            "app_secret": self.app_secret,
            "package": self.app.package,
            "name": self.app.name,
            "privacy_policy_version": self.app.privacy_policy_version,
            "region": self.app.region,
        }


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What the device SDK reports when it registers an app."""

    sdk_name: str = ""
    sdk_version: str = ""
    app_version: str = ""
    locale: str = ""
    model: str = ""
    consent_version: str | None = None
    consent_at: int | None = None


@dataclasses.dataclass(frozen=True)
class Device:
    reg_id: str
    app_id: str
    uaid: str
    account: str | None
    info: DeviceInfo
    last_seq: int
    log_cursor: int
    dropped: int
    aliases: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Notification:
    """The part of a message the device sees (the Mi Push message field set)."""

    title: str = ""
    description: str = ""
    payload: str = ""
    pass_through: int = 0
    notify_type: int = -1
    notify_id: int | None = None
    extra: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        """The body sent to devices; encoded once per message (the object is immutable)."""
        return self._json

    @functools.cached_property
    def _json(self) -> str:
        fields = {
            "title": self.title,
            "description": self.description,
            "payload": self.payload,
            "pass_through": self.pass_through,
            "notify_type": self.notify_type,
            "notify_id": self.notify_id,
            "extra": self.extra,
        }
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Notification:
        return cls(**json.loads(text))


@dataclasses.dataclass(frozen=True)
class Message:
    msg_id: str
    app_id: str
    kind: TargetKind
    notification: Notification
    created_at: int
    expires_at: int
    topics: tuple[str, ...] = ()
    topic_op: TopicOp = TopicOp.UNION

    @property
    def jobkey(self) -> str | None:
        return self.notification.extra.get("jobkey")


@dataclasses.dataclass(slots=True)
class Delivery:
    """One inbox entry ready to go to a device. ``msg_id`` None is the resync marker.

    Never changed once made; not frozen because a send builds one per target (a frozen
    dataclass costs ~1 µs more per instance: 1,000 per 1000-target send).
    """

    reg_id: str
    seq: int
    msg_id: str | None
    body: str | None
    expires_at: int

    @property
    def is_resync(self) -> bool:
        return self.msg_id is None


@dataclasses.dataclass(frozen=True)
class LogEntry:
    """A broadcast of an app's log, sent as it is to devices that are up to date with the log.

    One object per message, shared by every device it goes to: no inbox row, no per-device
    sequence number. The device acks it by ``offset``; only then does its log cursor move.
    """

    offset: int
    msg_id: str
    body: str
    expires_at: int


@dataclasses.dataclass(frozen=True)
class UnicastResult:
    """Outcome of storing a unicast send: which devices got it, which were unknown or filtered."""

    reg_ids: tuple[str, ...]
    bad_targets: tuple[str, ...]
    dropped: int = 0  # devices whose backlog cap dropped older entries for this send
    filtered: tuple[str, ...] = ()  # known devices skipped for lack of a valid consent
    unmatched: tuple[str, ...] = ()  # known devices the message's device filters left out
    # the inbox rows written, per device, ready to send (empty list: the backlog cap dropped some)
    deliveries: dict[str, list[Delivery]] | None = dataclasses.field(default=None, compare=False)
    # known devices left out because they reached today's quota of the message's category:
    # (regId, messages of that category it acked today), and that quota
    over_quota: tuple[tuple[str, int], ...] = ()
    quota: int = 0


@dataclasses.dataclass(frozen=True)
class MessageStats:
    """The counters of one message (or of every message sharing a jobkey) behind the trace API."""

    msg_id: str
    kind: str
    created_at: int
    ttl_ms: int
    raw_counter: int = 0
    resolved: int = 0
    invalid_target: int = 0
    app_not_register: int = 0
    device_condition_unmatch: int = 0
    delivered: int = 0
    click: int = 0
    bar_closed: int = 0


DAILY_COUNTERS = (
    "single_recipients",
    "broadcast_recipients",
    "alias_recipients",
    "useraccount_recipients",
    "regid_recipients",
    "received",
    "click",
)


@dataclasses.dataclass(frozen=True)
class ScheduledJob:
    """A send with ``time_to_send``: the message (dated at its ``time_to_send``) and its targets.

    ``durable`` False is a TTL-0 / only_send_once message: when it fires it goes to whoever is
    connected then, and nothing is stored.
    """

    message: Message
    targets: tuple[str, ...] = ()
    durable: bool = True

    @property
    def fire_at(self) -> int:
        return self.message.created_at


@dataclasses.dataclass(frozen=True)
class FiredJob:
    """A job the scheduler just claimed (and, when durable, committed as a normal send)."""

    job: ScheduledJob
    result: UnicastResult | None = None  # unicast sends only
    expired: bool = False  # its time to live ran out before it fired: nothing was sent


@dataclasses.dataclass(frozen=True)
class Receipt:
    """One queued receipt event for a message's ``extra.callback``."""

    receipt_id: str
    app_id: str
    url: str
    msg_id: str
    type: int
    targets: str  # comma-joined regIds (or the unknown targets, for type 16)
    jobkey: str | None
    param: str | None
    at: int
    attempts: int = 0
    extra: str | None = None  # a JSON object sent as the event's ``extra`` (type 128)


@dataclasses.dataclass(frozen=True)
class Channel:
    """A notification channel of an app; ``category`` is ``public`` or ``private``."""

    channel_id: str
    name: str
    description: str = ""
    sound_url: str = ""
    notify_type: int = -1
    category: str = "public"


@dataclasses.dataclass(frozen=True)
class WebPushMessage:
    """A Web Push message for one browser subscription (``channel_id``), as its frame carries
    it: ``version`` names it (unique), ``data`` is the encrypted body in base64url (None: no
    body), ``headers`` what the browser needs to decrypt it."""

    version: str
    channel_id: str
    data: str | None
    headers: dict[str, str]
    expires_at: int

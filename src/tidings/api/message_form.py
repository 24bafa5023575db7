"""The Mi Push message parameter set: read, check against the documented limits, build a Message.

Every rule answers with Mi Push's code for it (see ``docs/sender-api.md``). Unknown ``extra.*``
keys are kept verbatim and delivered to the device.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

from tidings import ids
from tidings.api import codes
from tidings.api.params import Params, decimal, json_param
from tidings.core import limits
from tidings.core.models import App, Message, Notification, TargetKind, TopicOp
from tidings.errors import ApiError

RESERVED_EXTRAS = frozenset(
    (
        "notify_effect",
        "intent_uri",
        "web_uri",
        "class_name",
        "intent_flag",
        "notify_foreground",
        "sound_uri",
        "ticker",
        "channel_id",
        "channel_name",
        "channel_description",
        "template_id",
        "template_param",
        "callback",
        "callback.param",
        "callback.type",
        "jobkey",
        "flow_control",
        "only_send_once",
        "locale",
        "locale_not_in",
        "model",
        "model_not_in",
        "app_version",
        "app_version_not_in",
        "connpt",
        "instant_notify",
        "notification_style_type",
        "notification_large_icon_uri",
        "notification_bigPic_uri",
        "layout_name",
        "layout_value",
        "push_server_action",
        "hybrid_debug",
        "hybrid_pn",
        "badge",
        "category",
        "sound_url",
        "ios_msg_channel",
        "content-available",
        "show-content",
    )
)
MAX_CALLBACK_URL = 512
MAX_CALLBACK_PARAM = 64  # bytes
MAX_SCHEDULE_AHEAD_MS = 7 * 86_400_000  # time_to_send: at most 7 days ahead
IMMEDIATE_MS = 1000  # a time_to_send less than this far ahead is sent at once
RESERVED_PREFIXES = ("notification_style_button_", "notification_small_icon_", "apsAlert-")


@dataclasses.dataclass(frozen=True)
class Draft:
    """A checked message, not yet addressed: the sender service adds the target and an id."""

    notification: Notification
    ttl_ms: int
    store: bool  # False for TTL 0 and extra.only_send_once=1: online now or never
    send_at: int | None = None  # time_to_send in the future: a scheduled job

    def message(
        self,
        app: App,
        kind: TargetKind,
        now: int,
        topics: tuple[str, ...] = (),
        topic_op: TopicOp = TopicOp.UNION,
        msg_id: str | None = None,
    ) -> Message:
        return Message(
            msg_id=msg_id or ids.message_id(),
            app_id=app.app_id,
            kind=kind,
            notification=self.notification,
            created_at=self.send_at or now,  # a scheduled message is dated when it fires
            expires_at=(self.send_at or now) + self.ttl_ms,
            topics=topics,
            topic_op=topic_op,
        )


def _int(value: Any, name: str, low: int, high: int, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    return decimal(value, name, low, high)


def _text(fields: dict[str, Any], name: str) -> str:
    """A text field: absent, null or a string (a JSON number or object is not text)."""
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(codes.ILLEGAL_PARAM, f"{name} must be a string")
    return value


def check_package(app: App, packages: list[str], several_allowed: bool) -> None:
    """Package binding: credentials work only for the package they were issued for."""
    if not packages:
        raise ApiError(codes.MISSING_PARAM, "restricted_package_name is required")
    if len(set(packages)) > 1 and not several_allowed:
        raise ApiError(codes.BAD_PACKAGE, "this endpoint takes a single package (use /v3)")
    wrong = [p for p in packages if p != app.package]
    if wrong:
        name = wrong[0] if len(wrong[0]) <= 256 else wrong[0][:256] + "…"
        raise ApiError(codes.BAD_PACKAGE, f"package {name!r} is not bound to this app")


def read_extras(fields: dict[str, Any]) -> dict[str, str]:
    """Check the ``extra`` map of a message: custom-key count, lengths, jobkey, only_send_once."""
    extra: dict[str, str] = {}
    custom = 0
    for key, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, str | int | None):
            raise ApiError(codes.ILLEGAL_PARAM, f"extra.{key} must be a string")
        key, value = str(key), "" if value is None else str(value)
        if not key or len(key) > limits.MAX_EXTRA_LEN or len(value) > limits.MAX_EXTRA_LEN:
            raise ApiError(
                codes.EXTRA_TOO_LONG,
                f"extra keys and values must be 1..{limits.MAX_EXTRA_LEN} characters",
            )
        if key not in RESERVED_EXTRAS and not key.startswith(RESERVED_PREFIXES):
            custom += 1
        extra[key] = value
    if custom > limits.MAX_EXTRAS:
        raise ApiError(
            codes.TOO_MANY_EXTRAS, f"at most {limits.MAX_EXTRAS} custom extra keys (got {custom})"
        )
    jobkey = extra.get("jobkey")
    if jobkey is not None and not limits.JOBKEY.match(jobkey):
        raise ApiError(
            codes.ILLEGAL_PARAM, "extra.jobkey: 1-20 of [0-9a-zA-Z_-], not starting with _"
        )
    if extra.get("only_send_once", "0") not in ("0", "1"):
        raise ApiError(codes.ILLEGAL_PARAM, "extra.only_send_once must be 0 or 1")
    _check_callback(extra)
    return extra


def _check_callback(extra: dict[str, str]) -> None:
    """``extra.callback``: an http(s) URL; ``callback.param`` ≤ 64 bytes; ``callback.type`` a mask.

    Where the URL points (private addresses, DNS rebinding) is checked when receipts are sent.
    """
    _int(extra.get("callback.type"), "extra.callback.type", 0, 2**31 - 1)
    url = extra.get("callback")
    if url is None:
        return
    if len(url) > MAX_CALLBACK_URL:
        raise ApiError(codes.CALLBACK_URL_TOO_LONG, f"extra.callback over {MAX_CALLBACK_URL}")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ApiError(codes.BAD_CALLBACK_URL, "extra.callback is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise ApiError(codes.BAD_CALLBACK_URL, "extra.callback must be an http(s) URL")
    if len(extra.get("callback.param", "").encode()) > MAX_CALLBACK_PARAM:
        raise ApiError(codes.CALLBACK_PARAM_TOO_LONG, "extra.callback.param over 64 bytes")


def read_message(fields: dict[str, Any], *, ttl_default: int, ttl_max: int, now: int) -> Draft:
    """Check one message given as a mapping of Mi Push field names (form or JSON)."""
    pass_through = _int(fields.get("pass_through"), "pass_through", 0, 1, 0)
    notify_type = _int(fields.get("notify_type"), "notify_type", -1, 7, -1)
    notify_id = _int(fields.get("notify_id"), "notify_id", 0, 2**31 - 1)
    ttl = _int(fields.get("time_to_live"), "time_to_live", 0, ttl_max, ttl_default)
    send_at = _int(fields.get("time_to_send"), "time_to_send", 0, 2**63 - 1)
    if send_at is not None and send_at > now + MAX_SCHEDULE_AHEAD_MS:
        raise ApiError(codes.ILLEGAL_PARAM, "time_to_send is more than 7 days ahead")
    if send_at is not None and send_at <= now + IMMEDIATE_MS:
        send_at = None  # now or in the past: send at once
    title = _text(fields, "title")
    description = _text(fields, "description")
    payload = _text(fields, "payload")
    if len(payload.encode()) >= limits.MAX_PAYLOAD_BYTES:
        raise ApiError(
            codes.CONTENT_TOO_LONG, f"payload must be shorter than {limits.MAX_PAYLOAD_BYTES} bytes"
        )
    if pass_through == 0:
        if not title.strip() or not description.strip():
            raise ApiError(codes.MISSING_PARAM, "a notification needs a title and a description")
    elif not payload.strip():
        raise ApiError(codes.MISSING_PARAM, "a pass-through message needs a payload")
    if len(title) >= limits.MAX_TITLE:
        raise ApiError(codes.ILLEGAL_PARAM, f"title must be shorter than {limits.MAX_TITLE}")
    if len(description) >= limits.MAX_DESCRIPTION:
        raise ApiError(
            codes.ILLEGAL_PARAM, f"description must be shorter than {limits.MAX_DESCRIPTION}"
        )
    extra_fields = fields.get("extra") or {}
    if not isinstance(extra_fields, dict):
        raise ApiError(codes.ILLEGAL_PARAM, "extra must be an object")
    extra = read_extras(extra_fields)
    assert ttl is not None and pass_through is not None and notify_type is not None
    note = Notification(
        title=title,
        description=description,
        payload=payload,
        pass_through=pass_through,
        notify_type=notify_type,
        notify_id=notify_id,
        extra=extra,
    )
    store = ttl > 0 and extra.get("only_send_once") != "1"
    return Draft(note, ttl, store, send_at)


def fields_from_params(params: Params) -> dict[str, Any]:
    """The message fields of a form request: top-level names plus ``extra.<key>``."""
    fields: dict[str, Any] = {}
    for name in (
        "title",
        "description",
        "payload",
        "pass_through",
        "notify_type",
        "notify_id",
        "time_to_live",
        "time_to_send",
    ):
        value = params.get(name)
        if value is not None:
            fields[name] = value
    fields["extra"] = {
        key[len("extra.") :]: params.get(key)
        for key in params.keys()  # noqa: SIM118
        if key.startswith("extra.")
    }
    return fields


def fields_from_json(obj: Any) -> dict[str, Any]:
    """The message of one multi-message entry; ``extra`` may be an object."""
    if not isinstance(obj, dict):
        raise ApiError(codes.ILLEGAL_PARAM, "message must be an object")
    fields = dict(obj)
    extra = fields.get("extra")
    if isinstance(extra, str):
        fields["extra"] = json_param(extra, "message.extra") if extra else {}
    return fields

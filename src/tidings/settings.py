"""Settings declared once, as data: name, default, help. Read at the edge, passed down as objects.

Every setting can be given as an environment variable ``TIDINGS_<NAME>`` (upper case); the
most used ones are also flags of ``tidings serve`` (``--data-dir``, ``--port``...).
``docs/operations.md`` documents each one; a test fails when one is missing there.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

from tidings.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "./data", "Directory for the SQLite database files."),
    Setting(
        "database_url", "", "PostgreSQL URL (postgresql://...); empty means SQLite in data_dir."
    ),
    Setting(
        "serve_regions",
        "",
        "Regions this node serves, comma separated (EU,UK); empty means every served region.",
    ),
    Setting(
        "regions_file",
        "",
        "JSON file with the regions table ([{code, entity, served}]); empty: the built-in one.",
    ),
    Setting("host", "127.0.0.1", "Address the HTTP API and the device gateway listen on."),
    Setting("port", 8470, "Port of the HTTP API (sender API)."),
    Setting("gateway_port", 8471, "Port of the device gateway (WebSocket)."),
    Setting("ttl_default_ms", 86_400_000, "Message time to live when a send gives none (1 day)."),
    Setting("ttl_max_ms", 864_000_000, "Largest time_to_live a send may ask for (10 days)."),
    Setting("backlog_cap", 1000, "Stored messages kept per offline device before the oldest go."),
    Setting("max_targets", 1000, "Most regIds / aliases / accounts in one send."),
    Setting("max_frame_bytes", 65536, "Largest WebSocket message a device may send."),
    Setting(
        "send_buffer_bytes",
        1_048_576,
        "Per-connection outbound buffer; above it the device is cut off.",
    ),
    Setting("inflight_window", 100, "Messages sent to one device and not yet acked, at most."),
    Setting("ack_timeout_s", 30.0, "Seconds before an unacked message is sent again."),
    Setting("hello_timeout_s", 10.0, "Seconds a new connection has to send its hello."),
    Setting("ping_interval_s", 60.0, "Seconds of silence before the gateway pings a device."),
    Setting("ping_timeout_s", 30.0, "Seconds a pinged device has to answer before it is dropped."),
    Setting("sweep_interval_s", 60.0, "Seconds between sweeps that delete expired messages."),
    Setting("auth_cache_s", 2.0, "Seconds an authenticated AppSecret is remembered by a node."),
    Setting("sqlite_batch", 512, "Most queued writes committed in one SQLite transaction."),
    Setting(
        "admin_token",
        "",
        "Operator token for the /admin endpoints (review queue); empty disables them.",
    ),
    Setting(
        "limits_cache_s",
        1.0,
        "Seconds a node keeps the limits schedule (tidings limits) in memory before reading it.",
    ),
    Setting(
        "terms_grace_days",
        14.0,
        "Days after a terms version takes effect before a developer who has not accepted it"
        " can no longer send (Mi Push code 10036).",
    ),
    Setting("cure_period_days", 10.0, "Default days a notified developer has to cure a breach."),
    Setting("termination_notice_days", 30.0, "Days of notice for a termination without cause."),
    Setting(
        "terminated_retention_days",
        90.0,
        "Days a terminated developer's apps, devices and messages are kept before erasure.",
    ),
    Setting("session_ttl_s", 604_800, "Seconds a management API login session lasts (7 days)."),
    Setting("stats_retention_days", 90, "Days a message's trace is kept after it was sent."),
    Setting("schedule_poll_s", 0.25, "Seconds between looks for scheduled sends that are due."),
    Setting("receipt_interval_s", 1.0, "Seconds between batches of receipts to extra.callback."),
    Setting("receipt_timeout_s", 5.0, "Seconds a receipt callback may take to answer."),
    Setting("receipt_max_attempts", 8, "Failed deliveries of a receipt before it is dropped."),
    Setting(
        "bus_url",
        "",
        "Redis URL (redis://host:port/db) of the bus between nodes; empty: the in-process bus"
        " (one node).",
    ),
    Setting("bus_prefix", "tidings", "Prefix of the bus's Redis channel (nodes that share it)."),
    Setting(
        "public_url",
        "",
        "Base URL the HTTP API is reached at from outside (Web Push endpoints are made from it);"
        " empty: http://host:port.",
    ),
    Setting(
        "webpush_ttl_max_s",
        2_592_000,
        "Longest TTL, in seconds, a Web Push message is kept for (30 days); longer ones are cut.",
    ),
    Setting(
        "webpush_pending_max",
        100,
        "Web Push messages kept per subscription for an offline browser; more are refused (429).",
    ),
    Setting(
        "receipt_allow_private",
        False,
        "Allow receipt callbacks to loopback, private and link-local addresses (tests only).",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# numbers that must be above zero (intervals, timeouts, sizes); every other number is >= 0
_POSITIVE = (
    "ttl_default_ms",
    "ttl_max_ms",
    "backlog_cap",
    "max_targets",
    "inflight_window",
    "max_frame_bytes",
    "send_buffer_bytes",
    "ack_timeout_s",
    "hello_timeout_s",
    "ping_interval_s",
    "ping_timeout_s",
    "sweep_interval_s",
    "sqlite_batch",
    "session_ttl_s",
    "schedule_poll_s",
    "receipt_interval_s",
    "receipt_timeout_s",
    "receipt_max_attempts",
    "webpush_pending_max",
)


def _coerce(setting: Setting, value: Any) -> Any:
    kind = type(setting.default)
    if isinstance(value, kind) and not (kind is float and not math.isfinite(value)):
        return value
    try:
        if kind is int:
            return int(value)
        if kind is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            return number
        if kind is bool:
            text = str(value).strip().lower()
            if text not in _TRUE + _FALSE:
                raise ValueError("not a yes/no value")
            return text in _TRUE
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"setting {setting.name}: cannot read {value!r} as {kind.__name__}"
        ) from exc


def _check(values: dict[str, Any]) -> None:
    """Ranges that no single type says: positive intervals, ports, a host, a PostgreSQL URL."""
    for s in SETTINGS:
        value = values[s.name]
        if isinstance(value, int | float) and not isinstance(value, bool):
            if s.name in _POSITIVE and value <= 0:
                raise ConfigError(f"setting {s.name} must be positive")
            if value < 0:
                raise ConfigError(f"setting {s.name} must not be negative")
    for name in ("port", "gateway_port"):
        if not 0 <= values[name] <= 65535:
            raise ConfigError(f"setting {name} must be a port, 0..65535 (0: any free port)")
    if not values["host"].strip():
        raise ConfigError("setting host must not be empty (127.0.0.1, or 0.0.0.0 for all)")
    public = values["public_url"]
    if public and (
        not public.startswith(("http://", "https://")) or "?" in public or "#" in public
    ):
        raise ConfigError("setting public_url must be an http:// or https:// base URL")
    bus = values["bus_url"]
    if bus and not bus.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("setting bus_url must be a redis://, rediss:// or unix:// URL")
    if not values["bus_prefix"].strip():
        raise ConfigError("setting bus_prefix must not be empty")
    url = values["database_url"]
    if url and not url.startswith(("postgresql://", "postgres://")):
        # the URL is not echoed: it may hold a password
        raise ConfigError("setting database_url must be a postgresql:// URL")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved settings; build with :func:`load`."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Settings:
        return load(env={}, overrides={**self.values, **changes})


def load(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Defaults, then ``TIDINGS_*`` environment variables, then explicit overrides (flags)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = env.get("TIDINGS_" + s.name.upper())
        values[s.name] = s.default if raw is None else _coerce(s, raw)
    for name, value in (overrides or {}).items():
        if name not in _BY_NAME:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _coerce(_BY_NAME[name], value)
    _check(values)
    if values["ttl_default_ms"] > values["ttl_max_ms"]:
        raise ConfigError("ttl_default_ms must not exceed ttl_max_ms")
    return Settings(values)

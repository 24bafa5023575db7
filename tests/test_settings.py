"""Settings are checked when read: a clear ConfigError, never a value that runs wrong."""

from __future__ import annotations

import pytest

from tidings import settings
from tidings.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "70000"),
        ("GATEWAY_PORT", "-1"),
        ("HOST", ""),
        ("SWEEP_INTERVAL_S", "0"),
        ("SCHEDULE_POLL_S", "-1"),
        ("RECEIPT_INTERVAL_S", "0"),
        ("ACK_TIMEOUT_S", "nan"),
        ("PING_TIMEOUT_S", "inf"),
        ("MAX_FRAME_BYTES", "-5"),
        ("SQLITE_BATCH", "0"),
        ("RECEIPT_ALLOW_PRIVATE", "ture"),
        ("DATABASE_URL", "mysql://u:s3cret@127.0.0.1/db"),
        ("BUS_URL", "amqp://u:s3cret@127.0.0.1/"),
        ("BUS_PREFIX", " "),
        ("PUBLIC_URL", "push.example.com"),
        ("PUBLIC_URL", "https://push.example.com/?x=1"),
        ("WEBPUSH_PENDING_MAX", "0"),
    ],
)
def test_bad_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings.load(env={f"TIDINGS_{name}": value})
    assert "s3cret" not in str(refused.value)  # a URL may hold a password: never echoed


def test_good_values_are_read() -> None:
    s = settings.load(
        env={
            "TIDINGS_PORT": "0",
            "TIDINGS_RECEIPT_ALLOW_PRIVATE": "Off",
            "TIDINGS_AUTH_CACHE_S": "0",
            "TIDINGS_DATABASE_URL": "postgres://127.0.0.1/test",
        }
    )
    assert (s.port, s.receipt_allow_private, s.auth_cache_s) == (0, False, 0.0)

"""Operator limits: per-device daily quotas by message category and a per-app request rate.

Limits are configuration with an effective date: a schedule of entries, each a preset (plus an
optional ``qps``) taking effect at ``effective_at``. The active limits are those of the newest
entry whose ``effective_at`` has passed; with none, everything is unlimited (a fresh install).
The ``mipush`` preset carries Mi Push's figures: per device, app and UTC day, 1 delivered message
without a channel (``default``), 5 in a public channel, no limit in a private one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

CATEGORIES = ("default", "public", "private")
PRESETS: dict[str, dict[str, int]] = {
    "unlimited": {},
    "mipush": {"default": 1, "public": 5},  # private: unlimited
}


@dataclasses.dataclass(frozen=True)
class Limits:
    preset: str = "unlimited"
    quotas: Mapping[str, int] = dataclasses.field(default_factory=dict)  # category -> per day
    qps: int | None = None  # requests per second per app on the sender API; None = unlimited

    @classmethod
    def of(cls, preset: str, qps: int | None = None) -> Limits:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        if qps is not None and qps <= 0:
            raise ValueError("qps must be positive")
        return cls(preset, dict(PRESETS[preset]), qps)

    @property
    def counting(self) -> bool:
        """Whether deliveries must be counted per device (some quota is set)."""
        return bool(self.quotas)


UNLIMITED = Limits()


@dataclasses.dataclass(frozen=True)
class LimitsEntry:
    """One row of the limits schedule."""

    limits_id: str
    limits: Limits
    effective_at: int  # epoch ms
    created_at: int


def active_entry(schedule: Sequence[LimitsEntry], now: int) -> LimitsEntry | None:
    """The newest entry in effect at ``now`` (ties: the one set last), or None."""
    best: LimitsEntry | None = None
    for e in schedule:
        if e.effective_at <= now and (
            best is None or (e.effective_at, e.created_at) > (best.effective_at, best.created_at)
        ):
            best = e
    return best


class TokenBuckets:
    """A token bucket per key (app) in this node's memory: ``rate`` requests a second, bursts of
    up to ``rate``."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, rate: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(key, (float(rate), now))
        tokens = min(float(rate), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        if len(self._buckets) >= self.MAX_KEYS and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1.0, now)
        return True

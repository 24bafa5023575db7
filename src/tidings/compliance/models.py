"""Records of the compliance features: policy versions, consent records, review rules and items."""

from __future__ import annotations

import dataclasses
import enum


@dataclasses.dataclass(frozen=True)
class PolicyVersion:
    """One published version of an app's privacy policy."""

    app_id: str
    version: str
    url: str
    published_at: int
    requires_fresh_consent: bool = True


@dataclasses.dataclass(frozen=True)
class ConsentRecord:
    """One ledger row. ``subject`` is the device pseudonym; ``hash`` chains to ``prev_hash``."""

    app_id: str
    seq: int
    subject: str
    policy_version: str
    action: str  # agreed | withdrawn | erased
    at: int
    source: str  # sdk | api
    app_version: str
    prev_hash: str
    hash: str


@dataclasses.dataclass(frozen=True)
class LedgerProblem:
    """Where a ledger chain is broken."""

    app_id: str
    seq: int
    problem: str


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    HOLD = "hold"
    REJECT = "reject"


@dataclasses.dataclass(frozen=True)
class ReviewRule:
    """A rule as stored: ``app_id`` None applies to every app."""

    rule_id: str
    app_id: str | None
    kind: str  # term | regex | link_deny | link_allow | audience
    pattern: str
    action: Verdict
    created_at: int


@dataclasses.dataclass(frozen=True)
class HeldMessage:
    """A message accepted but waiting in the review queue."""

    msg_id: str
    app_id: str
    kind: str
    body: str
    targets: tuple[str, ...]
    topics: tuple[str, ...]
    topic_op: str
    created_at: int
    expires_at: int
    status: str  # held | approved | rejected | expired
    reason: str
    decided_at: int | None

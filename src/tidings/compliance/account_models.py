"""Records of developer accounts: developers, credentials, terms, transitions, audit entries."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class Role(enum.StrEnum):
    OPERATOR = "operator"
    DEVELOPER = "developer"


class AccountState(enum.StrEnum):
    ACTIVE = "active"
    NOTIFIED = "notified"  # breach notice given; cure deadline running
    TERMINATING = "terminating"  # termination without cause; notice period running
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


BLOCKED_STATES = frozenset({AccountState.SUSPENDED, AccountState.TERMINATED})


@dataclasses.dataclass(frozen=True)
class Developer:
    developer_id: str
    email: str
    password_hash: str
    legal_name: str
    region: str
    role: str
    state: str
    state_reason: str
    state_since: int
    deadline: int | None
    created_at: int

    @property
    def blocked(self) -> bool:
        return self.state in BLOCKED_STATES

    def blocked_at(self, now: int) -> bool:
        """Blocked, or terminating with its notice period over (before the sweep records it)."""
        return self.blocked or (
            self.state == AccountState.TERMINATING
            and self.deadline is not None
            and self.deadline <= now
        )

    def public(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["password_hash"]
        return out


@dataclasses.dataclass(frozen=True)
class Credential:
    """A personal API token (kind ``api``) or a login session (kind ``session``); hash only."""

    token_id: str
    token_hash: str
    developer_id: str
    kind: str
    name: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None

    def public(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["token_hash"]
        return out


@dataclasses.dataclass(frozen=True)
class TermsVersion:
    version: str
    body: str
    published_at: int
    effective_at: int

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Acceptance:
    developer_id: str
    version: str
    accepted_at: int
    source: str

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Transition:
    transition_id: str
    developer_id: str
    from_state: str
    to_state: str
    reason: str
    actor: str
    at: int
    deadline: int | None

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    seq_id: str
    at: int
    actor: str
    developer_id: str | None
    action: str
    target: str
    source: str
    outcome: str
    detail: str

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

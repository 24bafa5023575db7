"""Platform terms: publish versions, record acceptances, tell developers what is coming.

A version has a text, a publication time and an effective time (never before publication). Once
the version in force has been effective for the grace period (``terms_grace_days``), a developer
who has accepted neither it nor a later version cannot send (Mi Push 10036, enforced in
``api/mipush.py`` through ``store.accounts.app_standing``). Versions and acceptances are never
changed or deleted: the full history is kept.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from tidings.compliance.account_models import Acceptance, Developer, TermsVersion
from tidings.compliance.accounts import actor_of, not_found
from tidings.errors import ManagementError
from tidings.store.store import Store

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")
MAX_TERMS = 60_000
DAY_MS = 86_400_000


def parse_time(value: object, field: str) -> int:
    """Epoch ms from an ISO 8601 date-time with a zone (``2026-12-01T00:00:00Z``) or an int."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return int(parsed.timestamp() * 1000)
    raise ManagementError(
        400, "invalid_field", f"{field} must be an ISO 8601 date-time with a time zone"
    )


class TermsService:
    def __init__(self, store: Store, grace_days: float = 14.0) -> None:
        self.store = store
        self.accounts = store.accounts
        self.grace_ms = int(grace_days * DAY_MS)

    async def publish(
        self, version: object, body: object, effective_at: object, actor: str, source: str = ""
    ) -> TermsVersion:
        if not isinstance(version, str) or not _VERSION.match(version):
            raise ManagementError(
                400, "invalid_field", "version must be 1..32 letters, digits, '.', '_' or '-'"
            )
        if not isinstance(body, str) or not body.strip() or len(body) > MAX_TERMS:
            raise ManagementError(400, "invalid_field", f"text must be 1..{MAX_TERMS} characters")
        now = self.store.clock.now_ms()
        effective = now if effective_at is None else parse_time(effective_at, "effective_at")
        if effective < now:
            raise ManagementError(
                400,
                "effective_before_publication",
                "effective_at must not be before the publication time (now)",
            )
        terms = TermsVersion(version, body, now, effective)
        if not await self.accounts.publish_terms(terms):
            raise ManagementError(409, "version_exists", f"terms version {version} exists")
        await self.accounts.audit(actor, None, "terms_publish", version, source)
        return terms

    async def accept(self, dev: Developer, version: str, source: str) -> Acceptance:
        if await self.accounts.terms_version(version) is None:
            raise not_found("terms version")
        acceptance = Acceptance(dev.developer_id, version, self.store.clock.now_ms(), source)
        if not await self.accounts.accept_terms(acceptance):
            raise ManagementError(409, "already_accepted", f"you accepted {version} already")
        await self.accounts.audit(actor_of(dev), dev.developer_id, "terms_accept", version, source)
        return acceptance

    async def announcements(self, dev: Developer | None) -> list[dict[str, Any]]:
        """Every version with its dates and, for a developer, whether and when they accepted."""
        accepted = (
            {a.version: a.accepted_at for a in await self.accounts.acceptances(dev.developer_id)}
            if dev is not None
            else {}
        )
        current = await self.accounts.terms_in_force()
        out = []
        for t in await self.accounts.terms_versions():
            entry: dict[str, Any] = {
                "version": t.version,
                "published_at": t.published_at,
                "effective_at": t.effective_at,
                "accept_by": t.effective_at + self.grace_ms,
                "in_force": current is not None and current.version == t.version,
            }
            if dev is not None:
                entry["accepted_at"] = accepted.get(t.version)
            out.append(entry)
        return out

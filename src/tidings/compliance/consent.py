"""Consent: policy versions, recording agreement and withdrawal, verifying the ledger.

Staff and developer operations live here (and in the ``tidings`` CLI) until the management API
takes them over. The ledger itself is written by ``store/privacy_ops.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidings.compliance.models import ConsentRecord, LedgerProblem, PolicyVersion
from tidings.errors import ComplianceError
from tidings.store.privacy_ops import GENESIS, record_hash, subject_of
from tidings.store.store import Store

MAX_VERSION = 64
MAX_URL = 2048


async def add_policy(
    store: Store,
    app_id: str,
    version: str,
    url: str,
    published_at: int | None = None,
    requires_fresh_consent: bool = True,
    make_current: bool = True,
) -> PolicyVersion:
    """Publish a policy version; by default it becomes the version devices must consent to."""
    if not version or len(version) > MAX_VERSION:
        raise ComplianceError(f"version must be 1..{MAX_VERSION} characters")
    if not url.startswith(("https://", "http://")) or len(url) > MAX_URL:
        raise ComplianceError("url must be an http(s) URL")
    policy = PolicyVersion(
        app_id,
        version,
        url,
        store.clock.now_ms() if published_at is None else published_at,
        requires_fresh_consent,
    )
    try:
        added = await store.add_policy_version(policy, make_current)
    except LookupError:
        raise ComplianceError(f"no app {app_id}") from None
    if not added:
        raise ComplianceError(f"version {version} already exists for app {app_id}")
    return policy


async def agree(store: Store, reg_id: str, version: str, source: str = "api") -> ConsentRecord:
    if not version or len(version) > MAX_VERSION:
        raise ComplianceError(f"version must be 1..{MAX_VERSION} characters")
    rec = await store.record_consent(reg_id, version, True, source)
    if rec is None:
        raise ComplianceError("unknown reg_id")
    return rec


async def withdraw(store: Store, reg_id: str, source: str = "api") -> ConsentRecord:
    rec = await store.record_consent(reg_id, None, False, source)
    if rec is None:
        raise ComplianceError("unknown reg_id")
    return rec


def verify_chain(
    records: Sequence[ConsentRecord], head: tuple[int, str] | None = None
) -> list[LedgerProblem]:
    """Check one app's records (in seq order) against their hashes and, if given, the head."""
    problems: list[LedgerProblem] = []
    prev, expected_seq = GENESIS, 1
    for r in records:
        if r.seq != expected_seq:
            problems.append(LedgerProblem(r.app_id, r.seq, f"expected seq {expected_seq}"))
        if r.prev_hash != prev:
            problems.append(LedgerProblem(r.app_id, r.seq, "prev_hash does not match"))
        if record_hash(r.prev_hash, r) != r.hash:
            problems.append(LedgerProblem(r.app_id, r.seq, "record was changed"))
        prev, expected_seq = r.hash, r.seq + 1
    if head is not None and records and head != (records[-1].seq, records[-1].hash):
        problems.append(LedgerProblem(records[-1].app_id, head[0], "records missing at the end"))
    if head is not None and not records and head[0] != 0:
        problems.append(LedgerProblem("", head[0], "all records missing"))
    return problems


async def verify(store: Store, app_id: str | None = None) -> list[LedgerProblem]:
    """Verify the ledger of one app, or of every app that has one."""
    app_ids = [app_id] if app_id else await store.ledger_app_ids()
    problems: list[LedgerProblem] = []
    for a in app_ids:
        records = await store.consent_records(a)
        problems += verify_chain(records, await store.consent_head(a))
    return problems


async def history(store: Store, app_id: str, reg_id: str) -> list[ConsentRecord]:
    """The ledger records of one device (by its pseudonym)."""
    return await store.consent_records(app_id, subject_of(app_id, reg_id))

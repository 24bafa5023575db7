"""Store operations for the platform terms (same ``Tx`` style as ``ops.py``).

Versions are never changed once published; acceptances are kept for ever (the full history).
"""

from __future__ import annotations

from tidings.compliance.account_models import Acceptance, TermsVersion
from tidings.store.ops import Tx

_TERMS_COLS = "version, body, published_at, effective_at"
_ACCEPT_COLS = "developer_id, version, accepted_at, source"


def publish(tx: Tx, terms: TermsVersion) -> bool:
    """Publish a version; False when the version name is taken (nothing changes)."""
    if tx.one("SELECT 1 FROM terms_versions WHERE version = ?", (terms.version,)):
        return False
    tx.execute(
        f"INSERT INTO terms_versions ({_TERMS_COLS}) VALUES (?, ?, ?, ?)",
        (terms.version, terms.body, terms.published_at, terms.effective_at),
    )
    return True


def versions(tx: Tx) -> list[TermsVersion]:
    rows = tx.all(f"SELECT {_TERMS_COLS} FROM terms_versions ORDER BY effective_at, version")
    return [TermsVersion(*r) for r in rows]


def version(tx: Tx, name: str) -> TermsVersion | None:
    row = tx.one(f"SELECT {_TERMS_COLS} FROM terms_versions WHERE version = ?", (name,))
    return TermsVersion(*row) if row else None


# The version in force at a time (the one ? stands for), to select columns from: the latest whose
# effective date has come.
IN_FORCE = (
    "FROM terms_versions WHERE effective_at <= ? ORDER BY effective_at DESC, version DESC LIMIT 1"
)


def in_force(tx: Tx, now: int) -> TermsVersion | None:
    """The version in force now: the latest whose effective date has come."""
    row = tx.one(f"SELECT {_TERMS_COLS} {IN_FORCE}", (now,))
    return TermsVersion(*row) if row else None


def accept(tx: Tx, acceptance: Acceptance) -> bool:
    """Record an acceptance; False when the developer had already accepted that version."""
    if tx.one(
        "SELECT 1 FROM terms_acceptances WHERE developer_id = ? AND version = ?",
        (acceptance.developer_id, acceptance.version),
    ):
        return False
    tx.execute(
        f"INSERT INTO terms_acceptances ({_ACCEPT_COLS}) VALUES (?, ?, ?, ?)",
        (acceptance.developer_id, acceptance.version, acceptance.accepted_at, acceptance.source),
    )
    return True


def acceptances(tx: Tx, developer_id: str | None) -> list[Acceptance]:
    if developer_id is None:
        rows = tx.all(f"SELECT {_ACCEPT_COLS} FROM terms_acceptances ORDER BY accepted_at")
    else:
        rows = tx.all(
            f"SELECT {_ACCEPT_COLS} FROM terms_acceptances WHERE developer_id = ?"
            " ORDER BY accepted_at",
            (developer_id,),
        )
    return [Acceptance(*r) for r in rows]

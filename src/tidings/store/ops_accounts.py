"""Store operations for developer accounts (same ``Tx`` style as ``ops.py``).

Developers, their credentials (API tokens and login sessions, stored as SHA-256 digests), the apps
they own, account state transitions and the append-only audit log. The sender API and the device
gateway ask :func:`app_standing` on every request, so a suspension or a rotated secret takes
effect at once on every node.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from tidings.compliance.account_models import (
    BLOCKED_STATES,
    AccountState,
    AuditEntry,
    Credential,
    Developer,
    Transition,
)
from tidings.core.models import App
from tidings.store import ops, ops_terms
from tidings.store.batches import chunks, marks
from tidings.store.ops import Tx

_DEV_COLS = (
    "developer_id, email, password_hash, legal_name, region, role, state, state_reason,"
    " state_since, deadline, created_at"
)
_CRED_COLS = "token_id, token_hash, developer_id, kind, name, created_at, expires_at, revoked_at"
_AUDIT_COLS = "seq_id, at, actor, developer_id, action, target, source, outcome, detail"
_TRANSITION_COLS = "transition_id, developer_id, from_state, to_state, reason, actor, at, deadline"

# what an app's data is stored in; deleting an app deletes these rows (ledgers and logs stay)
_APP_TABLES = (
    "aliases",
    "topic_subs",
    "messages",
    "scheduled_jobs",
    "receipts",
    "channels",
    "invalid_targets",
    "policy_versions",
    "review_rules",
    "review_queue",
    "log_ack_pages",
)


# --- developers ---------------------------------------------------------------------------------


def create_developer(tx: Tx, dev: Developer) -> bool:
    """Insert a developer; False when the email is taken (nothing changes)."""
    if tx.one("SELECT 1 FROM developers WHERE email = ?", (dev.email,)):
        return False
    tx.execute(
        f"INSERT INTO developers ({_DEV_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            dev.developer_id,
            dev.email,
            dev.password_hash,
            dev.legal_name,
            dev.region,
            dev.role,
            dev.state,
            dev.state_reason,
            dev.state_since,
            dev.deadline,
            dev.created_at,
        ),
    )
    return True


def developer_by_id(tx: Tx, developer_id: str) -> Developer | None:
    row = tx.one(f"SELECT {_DEV_COLS} FROM developers WHERE developer_id = ?", (developer_id,))
    return Developer(*row) if row else None


def developer_by_email(tx: Tx, email: str) -> Developer | None:
    row = tx.one(f"SELECT {_DEV_COLS} FROM developers WHERE email = ?", (email,))
    return Developer(*row) if row else None


def list_developers(tx: Tx, state: str | None = None) -> list[Developer]:
    if state:
        rows = tx.all(
            f"SELECT {_DEV_COLS} FROM developers WHERE state = ? ORDER BY created_at", (state,)
        )
    else:
        rows = tx.all(f"SELECT {_DEV_COLS} FROM developers ORDER BY created_at")
    return [Developer(*r) for r in rows]


def transition(tx: Tx, t: Transition, allowed_from: Sequence[str]) -> Developer | None:
    """Move a developer to ``t.to_state`` if its state is one of ``allowed_from``; record it.

    The conditional update makes two concurrent transitions from one state impossible. Returns
    the updated developer, or None when the current state does not allow the move.
    """
    tx.execute(
        f"UPDATE developers SET state = ?, state_reason = ?, state_since = ?, deadline = ?"
        f" WHERE developer_id = ? AND state = ? AND state IN ({marks(len(allowed_from))})",
        (t.to_state, t.reason, t.at, t.deadline, t.developer_id, t.from_state, *allowed_from),
    )
    if tx.rowcount() != 1:
        return None
    tx.execute(
        f"INSERT INTO account_transitions ({_TRANSITION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            t.transition_id,
            t.developer_id,
            t.from_state,
            t.to_state,
            t.reason,
            t.actor,
            t.at,
            t.deadline,
        ),
    )
    if t.to_state in BLOCKED_STATES:  # API tokens and sessions stop working at once
        tx.execute(
            "UPDATE credentials SET revoked_at = ? WHERE developer_id = ? AND revoked_at IS NULL",
            (t.at, t.developer_id),
        )
    return developer_by_id(tx, t.developer_id)


def transitions(tx: Tx, developer_id: str) -> list[Transition]:
    rows = tx.all(
        f"SELECT {_TRANSITION_COLS} FROM account_transitions WHERE developer_id = ?"
        " ORDER BY at, transition_id",
        (developer_id,),
    )
    return [Transition(*r) for r in rows]


# --- credentials --------------------------------------------------------------------------------


def add_credential(tx: Tx, cred: Credential) -> None:
    tx.execute(
        f"INSERT INTO credentials ({_CRED_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            cred.token_id,
            cred.token_hash,
            cred.developer_id,
            cred.kind,
            cred.name,
            cred.created_at,
            cred.expires_at,
            cred.revoked_at,
        ),
    )


def holder_of(tx: Tx, token_hash: str, kind: str, now: int) -> Developer | None:
    """The developer a live (unrevoked, unexpired) credential belongs to."""
    row = tx.one(
        "SELECT developer_id FROM credentials WHERE token_hash = ? AND kind = ?"
        " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        (token_hash, kind, now),
    )
    return developer_by_id(tx, row[0]) if row else None


def credentials_of(tx: Tx, developer_id: str, kind: str) -> list[Credential]:
    rows = tx.all(
        f"SELECT {_CRED_COLS} FROM credentials WHERE developer_id = ? AND kind = ?"
        " ORDER BY created_at, token_id",
        (developer_id, kind),
    )
    return [Credential(*r) for r in rows]


def revoke_credential(tx: Tx, developer_id: str, token_id: str, kind: str, now: int) -> bool:
    """Revoke one of the developer's credentials; False when it is not theirs or not live."""
    tx.execute(
        "UPDATE credentials SET revoked_at = ? WHERE token_id = ? AND developer_id = ?"
        " AND kind = ? AND revoked_at IS NULL",
        (now, token_id, developer_id, kind),
    )
    return tx.rowcount() == 1


def revoke_by_hash(tx: Tx, token_hash: str, now: int) -> bool:
    tx.execute(
        "UPDATE credentials SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
        (now, token_hash),
    )
    return tx.rowcount() == 1


# --- apps owned by developers -------------------------------------------------------------------


def create_owned_app(tx: Tx, app: App, developer_id: str) -> bool:
    """Create an app owned by a developer; False when the package is taken."""
    if ops.app_by_package(tx, app.package) is not None:
        return False
    ops.create_app(tx, app)
    tx.execute("UPDATE apps SET developer_id = ? WHERE app_id = ?", (developer_id, app.app_id))
    return True


def app_owner(tx: Tx, app_id: str) -> str | None:
    row = tx.one("SELECT developer_id FROM apps WHERE app_id = ?", (app_id,))
    return row[0] if row else None


def owned_app(tx: Tx, developer_id: str | None, app_id: str) -> App | None:
    """The app if it exists and (unless ``developer_id`` is None: operators) belongs to them."""
    app = ops.app_by_id(tx, app_id)
    if app is None or (developer_id is not None and app_owner(tx, app_id) != developer_id):
        return None
    return app


def apps_of(tx: Tx, developer_id: str | None) -> list[tuple[App, str | None]]:
    """Apps with their owner: one developer's, or every app (``None``: operators)."""
    cols = ops._APP_COLS
    if developer_id is None:
        rows = tx.all(f"SELECT {cols}, developer_id FROM apps ORDER BY created_at, app_id")
    else:
        rows = tx.all(
            f"SELECT {cols}, developer_id FROM apps WHERE developer_id = ?"
            " ORDER BY created_at, app_id",
            (developer_id,),
        )
    return [(App(*r[:-1]), r[-1]) for r in rows]


def rotate_app_secrets(
    tx: Tx, developer_id: str | None, app_id: str, key_hash: str, secret_hash: str
) -> bool:
    if owned_app(tx, developer_id, app_id) is None:
        return False
    tx.execute(
        "UPDATE apps SET app_key_hash = ?, secret_hash = ? WHERE app_id = ?",
        (key_hash, secret_hash, app_id),
    )
    return True


def delete_app(tx: Tx, developer_id: str | None, app_id: str) -> list[str]:
    """Delete an app and its devices, messages and settings; returns the deleted regIds.

    Consent ledgers, review decisions, statistics and the audit log are records and stay.
    Returns ``[]`` and changes nothing when the app is unknown or not the developer's; a found
    app is always reported by the caller through :func:`owned_app` first.
    """
    if owned_app(tx, developer_id, app_id) is None:
        return []
    reg_ids = [r[0] for r in tx.all("SELECT reg_id FROM devices WHERE app_id = ?", (app_id,))]
    for chunk in chunks(reg_ids):
        tx.execute(f"DELETE FROM inbox WHERE reg_id IN ({marks(len(chunk))})", tuple(chunk))
    for table in _APP_TABLES:
        tx.execute(f"DELETE FROM {table} WHERE app_id = ?", (app_id,))
    tx.execute("DELETE FROM devices WHERE app_id = ?", (app_id,))
    tx.execute("DELETE FROM apps WHERE app_id = ?", (app_id,))
    return reg_ids


def app_standing(
    tx: Tx, app_id: str, now: int, grace_ms: int, secret_hash: str | None = None
) -> tuple[str, str] | None:
    """Why an app may not be used now, or None.

    ``("secret", …)`` when ``secret_hash`` is given and no longer the app's (rotated, deleted),
    ``("blocked", reason)`` when its developer is suspended or terminated, ``("terms", reason)``
    when its developer has not accepted the terms in force past the grace period. Apps without an
    owner (created before developer accounts existed) are never refused for the last two.
    """
    # one statement (it runs on every sender API request): the app and its developer, the terms
    # version in force, and whether the developer accepted it or a later one
    row = tx.one(
        "SELECT a.secret_hash, d.developer_id, d.state, d.state_reason, d.deadline,"
        " t.version, t.effective_at, EXISTS (SELECT 1 FROM terms_acceptances ac"
        " JOIN terms_versions tv ON tv.version = ac.version"
        " WHERE ac.developer_id = d.developer_id AND tv.effective_at >= t.effective_at)"
        " FROM apps a LEFT JOIN developers d ON d.developer_id = a.developer_id"
        f" LEFT JOIN (SELECT version, effective_at {ops_terms.IN_FORCE}) t ON TRUE"
        " WHERE a.app_id = ?",
        (now, app_id),
    )
    if row is None or (secret_hash is not None and row[0] != secret_hash):
        return "secret", "Invalid application secret."
    _, developer_id, state, reason, deadline, version, effective_at, accepted = row
    if developer_id is None:
        return None
    if state == AccountState.TERMINATING and deadline is not None and deadline <= now:
        state, reason = AccountState.TERMINATED.value, "termination notice period over"
    if state in BLOCKED_STATES:
        return "blocked", f"developer account {state}: {reason}"
    # the version in force must be accepted once its grace period is over
    if version is not None and now >= effective_at + grace_ms and not accepted:
        return "terms", f"terms version {version} not accepted; accept it to send again"
    return None


# --- audit log ----------------------------------------------------------------------------------


def audit(
    tx: Tx,
    at: int,
    actor: str,
    developer_id: str | None,
    action: str,
    target: str = "",
    source: str = "",
    outcome: str = "ok",
    detail: str = "",
) -> None:
    seq_id = f"{at:015d}-{secrets.token_hex(6)}"  # sorts by time
    tx.execute(
        f"INSERT INTO audit_log ({_AUDIT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq_id, at, actor, developer_id, action, target, source, outcome, detail[:1000]),
    )


def audit_entries(
    tx: Tx,
    developer_id: str | None,
    since: int = 0,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    where: list[str] = ["at >= ?"]
    params: list[Any] = [since]
    if developer_id is not None:
        where.append("developer_id = ?")
        params.append(developer_id)
    if action:
        where.append("action = ?")
        params.append(action)
    rows = tx.all(
        f"SELECT {_AUDIT_COLS} FROM audit_log WHERE {' AND '.join(where)}"
        f" ORDER BY seq_id DESC LIMIT ?",
        (*params, limit),
    )
    return [AuditEntry(*r) for r in rows]


def counts(tx: Tx) -> dict[str, Any]:
    row = tx.one("SELECT count(*) FROM developers")
    return {"developers": int(row[0]) if row else 0}

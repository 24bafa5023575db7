"""Data-subject rights: export everything about one device, and erase it.

Erasure deletes the device row (regId, uaid, account, what the SDK reported), its aliases, topic
subscriptions and queued messages, removes it from the held review queue's targets and from this
node's presence, and makes the deletion reach the files (SQLite: ``secure_delete`` and a truncating
WAL checkpoint). The consent proof stays, as pseudonymous ledger records plus an ``erased`` record.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from tidings.compliance.models import ConsentRecord
from tidings.errors import ComplianceError
from tidings.store.store import Store

log = logging.getLogger("tidings.compliance")


class Presence(Protocol):
    """Where a device may be connected (the gateway hub)."""

    def forget(self, reg_id: str) -> None: ...


async def export(store: Store, reg_id: str) -> dict[str, Any]:
    """The data held about the device, as JSON-ready values (for a data-subject request)."""
    data = await store.export_device(reg_id)
    if data is None:
        raise ComplianceError("unknown reg_id")
    return data


async def erase(store: Store, reg_id: str, presence: Presence | None = None) -> ConsentRecord:
    """Erase the device; returns the ``erased`` ledger record (which names only the pseudonym)."""
    if presence is not None:
        presence.forget(reg_id)
    rec = await store.erase_device(reg_id)
    if rec is None:
        raise ComplianceError("unknown reg_id")
    log.info("device erased (subject %s, app %s)", rec.subject, rec.app_id)  # never the regId
    return rec

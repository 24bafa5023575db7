"""Store side of device filters (``core/filters.py``): look up what devices reported and split
targeted devices into those a message is for and those it is not (``device_condition_unmatch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tidings.core.filters import FILTER_KEYS, DeviceFilter
from tidings.core.models import DeviceInfo, Notification
from tidings.store.batches import chunks, marks

if TYPE_CHECKING:
    from tidings.store.ops import Tx

_LIKE = " OR ".join(["body LIKE ?"] * len(FILTER_KEYS))  # a cheap pre-check before JSON
_PATTERNS = tuple(f'%"{k}"%' for k in FILTER_KEYS)


def device_infos(tx: Tx, reg_ids: Sequence[str]) -> dict[str, DeviceInfo]:
    infos: dict[str, DeviceInfo] = {}
    for part in chunks(reg_ids):
        rows = tx.all(
            "SELECT reg_id, app_version, locale, model FROM devices"
            f" WHERE reg_id IN ({marks(len(part))})",
            tuple(part),
        )
        for reg_id, app_version, locale, model in rows:
            infos[reg_id] = DeviceInfo(app_version=app_version, locale=locale, model=model)
    return infos


def split(tx: Tx, reg_ids: Sequence[str], flt: DeviceFilter) -> tuple[list[str], list[str]]:
    """(devices the filter accepts, devices it does not), in the given order."""
    infos = device_infos(tx, reg_ids)
    accepted = [r for r in reg_ids if flt.accepts(infos.get(r, DeviceInfo()))]
    chosen = set(accepted)
    return accepted, [r for r in reg_ids if r not in chosen]


def log_filters(tx: Tx, app_id: str, low: int, head: int, now: int) -> dict[str, DeviceFilter]:
    """Filters of the app's unexpired log messages in (low, head], by message id."""
    rows = tx.all(
        "SELECT msg_id, body FROM messages WHERE app_id = ? AND log_offset > ?"
        f" AND log_offset <= ? AND expires_at > ? AND ({_LIKE})",
        (app_id, low, head, now, *_PATTERNS),
    )
    found = {}
    for msg_id, body in rows:
        flt = DeviceFilter.of(Notification.from_json(body).extra)
        if flt is not None:
            found[str(msg_id)] = flt
    return found

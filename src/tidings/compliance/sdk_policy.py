"""SDK version policy: per SDK name, a minimum supported and a deprecated-below version.

Devices whose SDK is below the minimum are refused at ``app_register`` (code 22031) with an
upgrade reason; deprecated ones are served and counted (``GET /api/v1/apps/{id}/sdk-versions``).
Versions compare by their numeric parts (``1.10.0`` > ``1.9``; ``2.0.0-beta`` counts as ``2.0.0``);
a device that reports no version for an SDK with a policy counts as below every version.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from tidings.errors import ManagementError

if TYPE_CHECKING:
    from tidings.store.store import Store

_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,3}([-+][0-9A-Za-z.-]{1,24})?\Z")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclasses.dataclass(frozen=True)
class SdkPolicy:
    sdk_name: str
    min_version: str
    deprecated_below: str
    updated_at: int

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def status(self, version: str) -> str:
        """``unsupported`` (refused), ``deprecated`` (served, counted) or ``supported``."""
        if self.min_version and below(version, self.min_version):
            return "unsupported"
        if self.deprecated_below and below(version, self.deprecated_below):
            return "deprecated"
        return "supported"

    def refusal(self, version: str) -> str | None:
        if self.status(version) != "unsupported":
            return None
        shown = version or "(no version)"
        return (
            f"SDK {self.sdk_name} {shown} is no longer supported;"
            f" upgrade to {self.min_version} or later"
        )


def parse(version: str) -> tuple[int, ...] | None:
    if not _VERSION.match(version):
        return None
    core = re.split(r"[-+]", version, maxsplit=1)[0]
    parts = [int(p) for p in core.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def below(version: str, bound: str) -> bool:
    mine, limit = parse(version), parse(bound)
    if limit is None:
        return False
    return mine is None or mine < limit


def check_version(value: object, field: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or parse(value) is None:
        raise ManagementError(400, "invalid_field", f"{field} must be a version like 1.2.3")
    return value


class SdkPolicyService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def set(
        self,
        sdk_name: object,
        min_version: object,
        deprecated_below: object,
        actor: str,
        source: str,
    ) -> SdkPolicy:
        if not isinstance(sdk_name, str) or not _NAME.match(sdk_name):
            raise ManagementError(400, "invalid_field", "sdk must be 1..64 letters, digits, . _ -")
        low = check_version(min_version, "min_version")
        dep = check_version(deprecated_below, "deprecated_below")
        if low and dep and below(dep, low):
            raise ManagementError(
                400, "invalid_field", "deprecated_below must not be below min_version"
            )
        policy = SdkPolicy(sdk_name, low, dep, self.store.clock.now_ms())
        await self.store.accounts.set_sdk_policy(policy)
        await self.store.accounts.audit(
            actor, None, "sdk_policy_set", sdk_name, source, "ok", f"min {low} deprecated {dep}"
        )
        return policy

    async def app_versions(self, app_id: str, region: Store) -> list[dict[str, Any]]:
        """Devices of the app by SDK version (counted in ``region``, the app's store)."""
        policies = {p.sdk_name: p for p in await self.store.accounts.sdk_policies()}
        out = []
        for name, version, count in await region.app_sdk_counts(app_id):
            policy = policies.get(name)
            status = policy.status(version) if policy else "supported"
            out.append(
                {"sdk_name": name, "sdk_version": version, "devices": count, "status": status}
            )
        return out

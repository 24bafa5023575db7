"""Distribution regions: the entity each contracts with, whether the deployment serves it.

A developer chooses a region at sign-up; their apps, and every device, message, consent record
and statistic of those apps, live in that region's own store (see :mod:`tidings.residency`).
The table is data: the built-in default below, or a JSON file named by the ``regions_file``
setting. A node serves the regions the ``serve_regions`` setting lists (empty: every served one).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from tidings.errors import ConfigError

_CODE = re.compile(r"^[A-Z]{2,8}\Z")


@dataclasses.dataclass(frozen=True)
class Region:
    code: str
    entity: str
    served: bool

    def public(self) -> dict[str, object]:
        return {"code": self.code, "entity": self.entity, "served": self.served}


DEFAULT_REGIONS: tuple[Region, ...] = (
    Region("EU", "Tidings Europe", True),
    Region("UK", "Tidings Europe", True),
    Region("IN", "Tidings India", True),
    Region("RU", "Tidings Russia", True),
    Region("ROW", "Tidings Global", True),
    Region("CN", "separate agreement", False),
)

DEFAULT_REGION = "ROW"  # apps made without a developer (``tidings app create``) live here


class RegionTable:
    """The deployment's regions, looked up by code."""

    def __init__(self, regions: Iterable[Region] = DEFAULT_REGIONS) -> None:
        self.regions = tuple(regions)
        self.by_code = {r.code: r for r in self.regions}
        if len(self.by_code) != len(self.regions):
            raise ConfigError("regions: a region code appears twice")
        for r in self.regions:
            if not _CODE.match(r.code):
                raise ConfigError(f"regions: code {r.code!r} must be 2-8 capital letters")

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions)

    def get(self, code: str) -> Region | None:
        return self.by_code.get(code)

    def served(self) -> list[str]:
        return [r.code for r in self.regions if r.served]

    def node_regions(self, wanted: str) -> list[str]:
        """The regions a node serves: those of ``wanted`` (comma separated), or every served one."""
        if not wanted.strip():
            return self.served()
        codes = [c.strip().upper() for c in wanted.split(",") if c.strip()]
        for code in codes:
            region = self.by_code.get(code)
            if region is None:
                known = ", ".join(self.by_code)
                raise ConfigError(f"serve_regions: unknown region {code!r} (known: {known})")
            if not region.served:
                raise ConfigError(f"serve_regions: region {code} is not served by this deployment")
        return list(dict.fromkeys(codes))

    @classmethod
    def load(cls, path: str) -> RegionTable:
        """The built-in table, or the one in a JSON file: ``[{"code", "entity", "served"}]``."""
        if not path:
            return cls()
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"regions_file {path}: {exc}") from exc
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"regions_file {path}: expected a non-empty JSON list of regions")
        regions = []
        for item in raw:
            ok = (
                isinstance(item, dict)
                and set(item) == {"code", "entity", "served"}
                and isinstance(item["code"], str)
                and isinstance(item["entity"], str)
                and isinstance(item["served"], bool)
            )
            if not ok:
                raise ConfigError(
                    f"regions_file {path}: each region is"
                    ' {"code": str, "entity": str, "served": bool}, got ' + json.dumps(item)
                )
            regions.append(Region(item["code"], item["entity"], item["served"]))
        return cls(regions)

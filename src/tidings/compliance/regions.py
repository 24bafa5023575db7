"""Distribution regions a developer can choose at sign-up and the entity each contracts with.

Only the table lives here so far: every region's data still shares the node's one store.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Region:
    code: str
    entity: str
    served: bool


DEFAULT_REGIONS: tuple[Region, ...] = (
    Region("EU", "Tidings Europe", True),
    Region("UK", "Tidings Europe", True),
    Region("IN", "Tidings India", True),
    Region("RU", "Tidings Russia", True),
    Region("ROW", "Tidings Global", True),
    Region("CN", "separate agreement", False),
)

BY_CODE = {r.code: r for r in DEFAULT_REGIONS}

"""Device filters of a message (``extra.locale``, ``extra.model``, ``extra.app_version`` and their
``*_not_in`` forms): which targeted devices a message is for.

Values are comma lists compared with what the device SDK reported at registration: locales and
app versions exactly, models case-insensitively. A device that reported nothing does not match a
positive filter and does match a ``*_not_in`` one. ``extra.connpt`` (network type) is not applied:
the SDK does not report the network type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from tidings.core.models import DeviceInfo

FILTER_KEYS = (
    "locale",
    "locale_not_in",
    "model",
    "model_not_in",
    "app_version",
    "app_version_not_in",
)


def _items(value: str | None, fold: bool = False) -> frozenset[str] | None:
    if value is None:
        return None
    items = (v.strip() for v in value.split(","))
    return frozenset(v.lower() if fold else v for v in items if v)


@dataclasses.dataclass(frozen=True)
class DeviceFilter:
    locale: frozenset[str] | None = None
    locale_not_in: frozenset[str] | None = None
    model: frozenset[str] | None = None
    model_not_in: frozenset[str] | None = None
    app_version: frozenset[str] | None = None
    app_version_not_in: frozenset[str] | None = None

    @classmethod
    def of(cls, extra: Mapping[str, str]) -> DeviceFilter | None:
        """The filter a message's extras ask for, or None when they ask for none."""
        if not any(k in extra for k in FILTER_KEYS):
            return None
        return cls(
            locale=_items(extra.get("locale")),
            locale_not_in=_items(extra.get("locale_not_in")),
            model=_items(extra.get("model"), fold=True),
            model_not_in=_items(extra.get("model_not_in"), fold=True),
            app_version=_items(extra.get("app_version")),
            app_version_not_in=_items(extra.get("app_version_not_in")),
        )

    def accepts(self, info: DeviceInfo) -> bool:
        model = info.model.lower()
        rules = (
            (self.locale, self.locale_not_in, info.locale),
            (self.model, self.model_not_in, model),
            (self.app_version, self.app_version_not_in, info.app_version),
        )
        for wanted, unwanted, value in rules:
            if wanted is not None and value not in wanted:
                return False
            if unwanted is not None and value in unwanted:
                return False
        return True

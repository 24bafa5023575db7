"""Device filters, without I/O."""

from __future__ import annotations

from tidings.core.filters import DeviceFilter
from tidings.core.models import DeviceInfo

CN = DeviceInfo(locale="zh_CN", model="MI 9", app_version="2.1")
US = DeviceInfo(locale="en_US", model="Pixel 8", app_version="2.0")
BLANK = DeviceInfo()


def test_no_filter_keys_no_filter() -> None:
    assert DeviceFilter.of({"notify_effect": "1", "connpt": "wifi"}) is None


def test_positive_and_negative_lists() -> None:
    f = DeviceFilter.of({"locale": "zh_CN, zh_TW"})
    assert f is not None and f.accepts(CN) and not f.accepts(US) and not f.accepts(BLANK)
    f = DeviceFilter.of({"locale_not_in": "zh_CN"})
    assert f is not None and not f.accepts(CN) and f.accepts(US) and f.accepts(BLANK)
    f = DeviceFilter.of({"model": "mi 9,Redmi"})
    assert f is not None and f.accepts(CN) and not f.accepts(US)
    f = DeviceFilter.of({"model_not_in": "PIXEL 8"})
    assert f is not None and f.accepts(CN) and not f.accepts(US)
    f = DeviceFilter.of({"app_version": "2.1", "locale_not_in": "en_US"})
    assert f is not None and f.accepts(CN) and not f.accepts(US)
    f = DeviceFilter.of({"app_version_not_in": "2.1,2.2"})
    assert f is not None and not f.accepts(CN) and f.accepts(US)

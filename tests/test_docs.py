"""The docs stay true: every setting, endpoint and error code is documented."""

from __future__ import annotations

import re
from pathlib import Path

from tidings.api import codes
from tidings.api.mipush import ROUTES
from tidings.protocol import codes as device_codes
from tidings.settings import SETTINGS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "operations.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert missing == []


def test_every_sender_route_is_documented() -> None:
    text = (DOCS / "sender-api.md").read_text()
    missing = [path for path in ROUTES if path not in text]
    assert missing == []


def test_every_sender_error_code_is_documented() -> None:
    text = (DOCS / "sender-api.md").read_text()
    numbers = {v for k, v in vars(codes).items() if k.isupper() and isinstance(v, int)}
    missing = sorted(n for n in numbers | set(codes.DESCRIPTIONS) if n and str(n) not in text)
    assert missing == []


def test_every_device_code_is_documented() -> None:
    text = (DOCS / "device-protocol.md").read_text()
    numbers = {v for k, v in vars(device_codes).items() if k.isupper() and isinstance(v, int)}
    missing = sorted(n for n in numbers if n and not re.search(rf"\b{n}\b", text))
    assert missing == []

"""Package names as Android defines them: dot-separated Java identifiers, at least two parts."""

from __future__ import annotations

import re

_PACKAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+\Z")


def valid_package(name: str) -> bool:
    return len(name) <= 255 and bool(_PACKAGE.match(name))

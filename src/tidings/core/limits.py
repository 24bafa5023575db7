"""Field limits shared by the sender API and the device protocol, with Mi Push's codes."""

from __future__ import annotations

import re
from typing import Any

MAX_ALIAS = 128
MAX_ACCOUNT = 128
MAX_TOPIC = 128
MAX_TOPICS = 5  # in one multi-topic expression
MAX_TITLE = 50  # characters, exclusive: a title must be shorter
MAX_DESCRIPTION = 128
MAX_PAYLOAD_BYTES = 4096  # exclusive
MAX_EXTRAS = 10  # custom extra.* keys
MAX_EXTRA_LEN = 1024
JOBKEY = re.compile(r"^[0-9A-Za-z-][0-9A-Za-z_-]{0,19}\Z")

ALIAS_EMPTY, ALIAS_LONG = 65012, 65008
TOPIC_EMPTY, TOPIC_LONG, TOO_MANY_TOPICS = 65013, 65010, 65035
ACCOUNT_EMPTY, ACCOUNT_LONG = 65016, 65017


def _check(
    value: str, limit: int, empty_code: int, long_code: int, what: str
) -> tuple[int, str] | None:
    if not value.strip():
        return empty_code, f"{what} is empty"
    if len(value) > limit:
        return long_code, f"{what} is longer than {limit} characters"
    if any(c in value for c in ",\r\n\t"):
        return empty_code if not value.strip(",") else 10017, f"{what} contains a separator"
    return None


def check_alias(value: str) -> tuple[int, str] | None:
    return _check(value, MAX_ALIAS, ALIAS_EMPTY, ALIAS_LONG, "alias")


def check_account(value: str) -> tuple[int, str] | None:
    return _check(value, MAX_ACCOUNT, ACCOUNT_EMPTY, ACCOUNT_LONG, "user account")


def check_topic(value: str) -> tuple[int, str] | None:
    problem = _check(value, MAX_TOPIC, TOPIC_EMPTY, TOPIC_LONG, "topic")
    if problem is None and ";$;" in value:
        return 20209, "topic contains the multi-topic separator ;$;"
    return problem


def check_command_arg(command: str, arg: str) -> tuple[int, str] | None:
    """Validate the argument of a device command; None when it is fine."""
    if command.endswith("alias"):
        return check_alias(arg)
    if command.endswith("account"):
        return check_account(arg)
    return check_topic(arg)


def is_decimal(text: str) -> bool:
    """ASCII decimal digits with an optional ``-``, nothing else: no ``+``, ``_``, spaces or
    other scripts' digits, all of which ``int()`` would take."""
    digits = text[1:] if text[:1] == "-" else text
    return digits.isascii() and digits.isdigit()


UNSTORABLE = "strings must not contain U+0000 or unpaired surrogates"


def unstorable_text(value: Any) -> bool:
    """Whether a decoded JSON value holds a string (or key) no store can keep: U+0000, which
    PostgreSQL refuses in text, or an unpaired surrogate (``"\\ud800"``), which is not UTF-8.
    No recursion: the parser's own depth limit is the only bound on nesting."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or not (item.isascii() or _utf8(item)):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True

"""Request parameters as Mi Push senders encode them.

Query string and form body are merged on every method; the ``?b'...'`` query that
``xmpush-python`` sends on GETs is unwrapped; list values may be comma-joined, have a trailing
comma, or repeat the parameter.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from tidings.api import codes
from tidings.core.limits import UNSTORABLE, is_decimal, unstorable_text
from tidings.errors import ApiError

MAX_BODY = 2 * 1024 * 1024  # 1000 targets x 64 bytes plus a 4 KB payload fits easily
# no text Tidings keeps may hold U+0000: PostgreSQL refuses it in text columns, and a value that
# could be stored on one engine and not on another must not be accepted on either
NUL_REFUSED = "parameters must not contain NUL (U+0000) characters"


def _unwrap_bytes_repr(query: str) -> str:
    if query.startswith("b'") and query.endswith("'"):
        return query[2:-1]
    if query.startswith('b"') and query.endswith('"'):
        return query[2:-1]
    return query


class Params:
    """Every value of every parameter, in arrival order (query first, then body)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    @classmethod
    def parse(cls, query: bytes | str, body: bytes, content_type: str = "") -> Params:
        q = query.decode("latin-1") if isinstance(query, bytes) else query
        _refuse_nul(q)
        pairs = _parse(_unwrap_bytes_repr(q))
        if body and "json" not in content_type.lower():
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ApiError(codes.PARAM_ERROR, "request body is not UTF-8") from exc
            _refuse_nul(text)
            pairs += _parse(text)
        return cls(pairs)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def keys(self) -> list[str]:
        return list(self._values)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The last value given for a parameter (later values win, as in the SDKs)."""
        values = self._values.get(key)
        return values[-1] if values else default

    def list(self, *keys: str, sep: str = ",") -> list[str]:
        """Values of the first present key, split on ``sep``; empty items (trailing commas) go."""
        for key in keys:
            if key in self._values:
                out: list[str] = []
                for value in self._values[key]:
                    out.extend(v.strip() for v in value.split(sep) if v.strip())
                return out
        return []


def _refuse_nul(encoded: str) -> None:
    """A NUL in form-encoded text is ``%00`` or the byte itself (a scan of the raw text, faster
    than of every decoded value: a ``%00`` in it always decodes to a NUL)."""
    if "%00" in encoded or "\x00" in encoded:
        raise ApiError(codes.ILLEGAL_PARAM, NUL_REFUSED)


def _parse(text: str) -> list[tuple[str, str]]:
    if not text:
        return []
    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=20000,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(codes.PARAM_ERROR, f"cannot parse parameters: {exc}") from exc


def json_param(text: str, name: str) -> Any:
    """The value of a parameter that holds JSON (``messages``, ``extra``): 10017 when it is not
    JSON, nests deeper than the parser goes, or holds a NUL in a string (``\\u0000``)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ApiError(codes.ILLEGAL_PARAM, f"{name} is not JSON") from None
    if unstorable_text(value):
        raise ApiError(codes.ILLEGAL_PARAM, f"{name}: {UNSTORABLE}")
    return value


def decimal(value: Any, name: str, low: int, high: int) -> int:
    """An integer parameter or field: a JSON number or :func:`~tidings.core.limits.is_decimal`
    text; 10017 otherwise or outside ``low..high``."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not is_decimal(text):
        raise ApiError(codes.ILLEGAL_PARAM, f"{name} must be a decimal integer")
    if len(text) > 20 or not low <= int(text) <= high:
        raise ApiError(codes.ILLEGAL_PARAM, f"{name} must be between {low} and {high}")
    return int(text)

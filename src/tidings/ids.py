"""Identifiers and secrets: generation, hashing and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def message_id() -> str:
    """A 22-character opaque id, roughly time-ordered (Mi Push ids have the same length)."""
    ms = time.time_ns() // 1_000_000
    return "tdm" + _base62(ms, 8) + _base62(secrets.randbits(64), 11)


def trace_id() -> str:
    return "Xtd" + _base62(secrets.randbits(110), 19)


def app_id() -> str:
    """A numeric AppID, 13 digits like the ones app developers already know."""
    return "28823" + f"{secrets.randbelow(10**8):08d}"


def app_key() -> str:
    return secrets.token_urlsafe(16)


def app_secret() -> str:
    return secrets.token_urlsafe(18)


def reg_id() -> str:
    return secrets.token_urlsafe(33)


def uaid() -> str:
    return secrets.token_hex(16)


def secret_hash(secret: str) -> str:
    """Digest under which a high-entropy secret is stored and looked up.

    Secrets are random 128+ bit tokens, so a plain SHA-256 is enough (no password stretching);
    only the digest is stored, and lookups compare digests with ``hmac.compare_digest``.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)

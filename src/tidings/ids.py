"""Identifiers and secrets: generation, hashing and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


class _Pool(threading.local):
    """Random bytes from the OS 4 KiB at a time, per thread: the ids made on every request (two
    per send) cost one system call per ~250 of them instead of one each."""

    def __init__(self) -> None:
        self.data, self.at = b"", 0

    def bits(self, n: int) -> int:
        size = (n + 7) // 8
        if self.at + size > len(self.data):
            self.data, self.at = os.urandom(4096), 0
        self.at += size
        return int.from_bytes(self.data[self.at - size : self.at], "big") >> (8 * size - n)


_pool = _Pool()


def message_id() -> str:
    """A 22-character opaque id, roughly time-ordered (Mi Push ids have the same length)."""
    ms = time.time_ns() // 1_000_000
    return "tdm" + _base62(ms, 8) + _base62(_pool.bits(64), 11)


def trace_id() -> str:
    return "Xtd" + _base62(_pool.bits(110), 19)


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

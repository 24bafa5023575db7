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

    def chars(self, n: int) -> str:
        """``n`` random base-62 characters (bytes 0-247 taken, 248-255 drawn again: unbiased)."""
        out = ""
        while len(out) < n:
            if self.at + n > len(self.data):
                self.data, self.at = os.urandom(4096), 0
            chunk = self.data[self.at : self.at + n - len(out)]
            self.at += len(chunk)
            out += chunk.translate(_TO_BASE62, _OVER).decode()
        return out


_pool = _Pool()
# byte b -> _ALPHABET[b % 62] for b < 248 (4 × 62); the 8 bytes above are deleted (drawn again)
_TO_BASE62 = bytes(ord(_ALPHABET[b % 62]) for b in range(248)) + bytes(8)
_OVER = bytes(range(248, 256))
_stamp = (-1, "")  # the last millisecond and its 8 characters (many ids share one)


def message_id() -> str:
    """A 22-character opaque id, roughly time-ordered (Mi Push ids have the same length): 8
    characters of milliseconds, then 11 random ones (65 bits)."""
    global _stamp
    ms = time.time_ns() // 1_000_000
    if ms != _stamp[0]:
        _stamp = (ms, _base62(ms, 8))
    return "tdm" + _stamp[1] + _pool.chars(11)


def trace_id() -> str:
    return "Xtd" + _pool.chars(19)


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


def push_token() -> str:
    """The secret part of a Web Push endpoint: whoever knows it can push to the browser."""
    return secrets.token_urlsafe(24)


def push_version() -> str:
    """A Web Push message's ``version``: unique, and a capability (it names the message's
    Location, which can take it back)."""
    return secrets.token_urlsafe(16)


def secret_hash(secret: str) -> str:
    """Digest under which a high-entropy secret is stored and looked up.

    Secrets are random 128+ bit tokens, so a plain SHA-256 is enough (no password stretching);
    only the digest is stored, and lookups compare digests with ``hmac.compare_digest``.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)

"""Web Push (RFC 8030, 8291, 8292) without I/O: what a push request may carry, and VAPID.

An application server POSTs an encrypted body to a subscription's push endpoint. Tidings never
decrypts it: the body goes to the browser as it came (base64url in the ``notification`` frame),
with the ``Content-Encoding`` (and, for the older ``aesgcm``, the ``Encryption`` and
``Crypto-Key`` parameters) the browser needs to decrypt it. When the browser gave an application
server key at ``register``, every push must carry a VAPID token signed with that key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tidings.errors import PushRefused

MAX_BODY = 4096  # bytes of encrypted payload (RFC 8030 section 7.2 asks at least this much)
URGENCIES = ("very-low", "low", "normal", "high")
VAPID_MAX_S = 86_400  # a VAPID token may be valid for at most 24 hours (RFC 8292 section 2)
CLOCK_SKEW_S = 60

# errno values, numbered as Mozilla's push service numbers them
ERRNO_INVALID_ENDPOINT = 102
ERRNO_GONE = 103
ERRNO_TOO_LARGE = 104
ERRNO_BAD_AUTH = 109
ERRNO_BAD_CRYPTO = 110
ERRNO_MISSING_TTL = 111
ERRNO_BAD_HEADER = 112
ERRNO_TOO_MANY = 201

_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
_CHANNEL_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
_PARAM = re.compile(r"[\x21-\x7e]{1,1024}\Z")  # a header value passed on to the browser


@dataclasses.dataclass(frozen=True)
class Push:
    """A push request that passed every check."""

    ttl_s: int  # 0: deliver now or never (not stored)
    topic: str | None  # a pending message with the same topic is replaced
    urgency: str
    data: str | None  # the body, base64url without padding; None for a push without one
    headers: dict[str, str]  # what the browser needs to decrypt it (the frame's "headers")


def valid_channel_id(value: object) -> bool:
    """Browsers name a subscription with a UUID (``channelID``)."""
    return isinstance(value, str) and _CHANNEL_ID.match(value) is not None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_b64url(text: str) -> bytes:
    """base64url, with or without ``=`` padding; ``ValueError`` when it is not."""
    text = text.strip().rstrip("=")
    if not text.isascii() or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def decode_key(text: object) -> bytes:
    """A P-256 public key as browsers give it (uncompressed point, base64url): its 65 bytes;
    ``ValueError`` for anything else."""
    if not isinstance(text, str) or len(text) > 200:
        raise ValueError("the key must be a base64url string")
    raw = decode_b64url(text)
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("the key must be an uncompressed P-256 point (65 bytes)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise ValueError("the key is not a point on P-256") from exc
    return raw


def read_push(headers: Mapping[str, str], body: bytes, ttl_max_s: int) -> Push:
    """Check a push request's headers (lower-case names) and body; :class:`PushRefused` (400
    or 413) names the first problem."""
    ttl_text = headers.get("ttl")
    if ttl_text is None:
        raise PushRefused(400, ERRNO_MISSING_TTL, "the TTL header is required")
    ttl_text = ttl_text.strip()
    if not (ttl_text.isascii() and ttl_text.isdigit()):
        raise PushRefused(400, ERRNO_BAD_HEADER, "TTL must be a number of seconds")
    # delta-seconds (RFC 9111 section 1.2.2): a number too large to read is the longest TTL
    ttl_s = ttl_max_s if len(ttl_text) > 12 else min(int(ttl_text), ttl_max_s)
    topic = headers.get("topic")
    if topic is not None and not _TOPIC.match(topic):
        raise PushRefused(400, ERRNO_BAD_HEADER, "Topic must be 1-32 base64url characters")
    urgency = headers.get("urgency", "normal").strip().lower()
    if urgency not in URGENCIES:
        raise PushRefused(400, ERRNO_BAD_HEADER, f"Urgency must be one of {', '.join(URGENCIES)}")
    if len(body) > MAX_BODY:
        raise PushRefused(413, ERRNO_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
    data, frame_headers = None, {}
    if body:
        frame_headers = _crypto_headers(headers)
        data = b64url(body)
    return Push(ttl_s, topic, urgency, data, frame_headers)


def _crypto_headers(headers: Mapping[str, str]) -> dict[str, str]:
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding == "aes128gcm":  # everything needed is inside the body
        return {"encoding": encoding}
    if encoding == "aesgcm":
        encryption, crypto_key = headers.get("encryption", ""), headers.get("crypto-key", "")
        if not _PARAM.match(encryption) or "salt=" not in encryption:
            raise PushRefused(400, ERRNO_BAD_CRYPTO, "aesgcm needs an Encryption header (salt)")
        if not _PARAM.match(crypto_key) or "dh=" not in crypto_key:
            raise PushRefused(400, ERRNO_BAD_CRYPTO, "aesgcm needs a Crypto-Key header (dh)")
        return {"encoding": encoding, "encryption": encryption, "crypto_key": crypto_key}
    raise PushRefused(
        400, ERRNO_BAD_CRYPTO, "a body must be encrypted: Content-Encoding aes128gcm or aesgcm"
    )


# --- VAPID (RFC 8292) ----------------------------------------------------------------------------


def check_vapid(
    authorization: str, crypto_key: str, subscription_key: bytes | None, audience: str, now_s: int
) -> None:
    """Check the request's VAPID token: signed by the key it names, for ``audience`` (the push
    endpoint's origin), not expired, and from the subscription's application server key when the
    browser gave one. No token is fine only when the browser gave none. 401 or 403 otherwise."""
    if not authorization.strip():
        if subscription_key is not None:
            raise PushRefused(401, ERRNO_BAD_AUTH, "this subscription needs a VAPID token")
        return
    token, key_text = _vapid_parts(authorization, crypto_key)
    try:
        key = decode_key(key_text)
    except ValueError as exc:
        raise PushRefused(401, ERRNO_BAD_AUTH, f"VAPID key: {exc}") from None
    if subscription_key is not None and key != subscription_key:
        raise PushRefused(403, ERRNO_BAD_AUTH, "the VAPID key is not this subscription's key")
    claims = _verified_claims(token, key)
    if claims.get("aud") != audience:
        raise PushRefused(401, ERRNO_BAD_AUTH, f"the VAPID token's aud must be {audience}")
    exp = claims.get("exp")
    if type(exp) is not int or exp <= now_s - CLOCK_SKEW_S:
        raise PushRefused(401, ERRNO_BAD_AUTH, "the VAPID token has expired (exp)")
    if exp > now_s + VAPID_MAX_S + CLOCK_SKEW_S:
        raise PushRefused(401, ERRNO_BAD_AUTH, "the VAPID token's exp is more than 24 h ahead")


def _vapid_parts(authorization: str, crypto_key: str) -> tuple[str, str]:
    """(JWT, key) from ``vapid t=…, k=…`` (RFC 8292) or ``WebPush <jwt>`` with the key in
    ``Crypto-Key: p256ecdsa=…`` (the earlier draft some libraries still send)."""
    scheme, _, rest = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "vapid":
        params = _params(rest, ",")
        token, key = params.get("t", ""), params.get("k", "")
    elif scheme == "webpush":
        token, key = rest.strip(), _params(crypto_key.replace(",", ";"), ";").get("p256ecdsa", "")
    else:
        raise PushRefused(401, ERRNO_BAD_AUTH, "Authorization must be a vapid token")
    if not token or not key:
        raise PushRefused(401, ERRNO_BAD_AUTH, "the VAPID token or key is missing")
    return token, key


def _params(text: str, sep: str) -> dict[str, str]:
    out = {}
    for part in text.split(sep):
        name, eq, value = part.strip().partition("=")
        if eq:
            out[name.strip().lower()] = value.strip().strip('"')
    return out


def _verified_claims(token: str, key: bytes) -> dict[str, object]:
    parts = token.split(".")
    if len(parts) != 3:
        raise PushRefused(401, ERRNO_BAD_AUTH, "the VAPID token is not a JWT")
    try:
        header = orjson.loads(decode_b64url(parts[0]))
        claims = orjson.loads(decode_b64url(parts[1]))
        signature = decode_b64url(parts[2])
    except ValueError:  # orjson's JSONDecodeError is a ValueError too
        raise PushRefused(401, ERRNO_BAD_AUTH, "the VAPID token is not a JWT") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise PushRefused(401, ERRNO_BAD_AUTH, "the VAPID token must be signed with ES256")
    if not isinstance(claims, dict) or len(signature) != 64:
        raise PushRefused(401, ERRNO_BAD_AUTH, "the VAPID token is not a JWT")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PushRefused(401, ERRNO_BAD_AUTH, "the VAPID signature does not verify") from None
    return claims

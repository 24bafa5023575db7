"""Web Push request rules and VAPID, with real keys and tokens made by py-vapid."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid

from tidings.core.webpush import check_vapid, decode_key, read_push
from tidings.errors import PushRefused

AUD = "http://127.0.0.1:8470"


def keys() -> tuple[Vapid, bytes]:
    vapid = Vapid()
    vapid.generate_keys()
    return vapid, vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def refused(status: int, fn, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(PushRefused) as caught:
        fn(*args)
    assert caught.value.status == status, caught.value
    return caught.value.message


def test_vapid_in_both_forms_and_its_time_limits() -> None:
    vapid, public = keys()
    now = int(time.time())
    signed = vapid.sign({"aud": AUD, "sub": "mailto:a@example.com", "exp": now + 3600})
    check_vapid(signed["Authorization"], "", public, AUD, now)  # RFC 8292: vapid t=, k=
    token = signed["Authorization"].split("t=", 1)[1].split(",", 1)[0]
    key = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
    check_vapid(f"WebPush {token}", f"dh=abc;p256ecdsa={key}", public, AUD, now)  # the draft
    check_vapid(signed["Authorization"], "", None, AUD, now)  # no key given at subscribe
    assert "expired" in refused(
        401, check_vapid, signed["Authorization"], "", public, AUD, now + 7200
    )
    late = vapid.sign({"aud": AUD, "sub": "mailto:a@example.com", "exp": now + 2 * 86400})
    assert "24 h" in refused(401, check_vapid, late["Authorization"], "", public, AUD, now)
    _, other_public = keys()
    assert "key" in refused(403, check_vapid, signed["Authorization"], "", other_public, AUD, now)
    refused(401, check_vapid, "", "", public, AUD, now)
    check_vapid("", "", None, AUD, now)  # neither key nor token: fine
    refused(401, check_vapid, "Bearer abc", "", public, AUD, now)


def test_a_token_not_signed_with_es256_is_refused() -> None:
    _, public = keys()
    now = int(time.time())
    head = base64.urlsafe_b64encode(orjson.dumps({"alg": "none"})).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(orjson.dumps({"aud": AUD, "exp": now + 60})).rstrip(b"=")
    key = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
    auth = f"vapid t={head}.{body.decode()}.{'A' * 86}, k={key}"
    assert "ES256" in refused(401, check_vapid, auth, "", public, AUD, now)
    assert "JWT" in refused(401, check_vapid, f"vapid t=abc, k={key}", "", public, AUD, now)


def test_push_headers_are_checked_and_passed_on() -> None:
    push = read_push(
        {
            "ttl": "99999999",
            "content-encoding": "aesgcm",
            "encryption": "salt=abc",
            "crypto-key": "dh=def;p256ecdsa=ghi",
            "topic": "news_1",
            "urgency": "HIGH",
        },
        b"\x00\x01",
        ttl_max_s=60,
    )
    assert push.ttl_s == 60 and push.topic == "news_1" and push.urgency == "high"
    assert push.data == "AAE"
    assert push.headers == {
        "encoding": "aesgcm",
        "encryption": "salt=abc",
        "crypto_key": "dh=def;p256ecdsa=ghi",
    }
    assert read_push({"ttl": "5"}, b"", 60).data is None  # no body: nothing to decrypt
    refused(400, read_push, {"ttl": "5", "content-encoding": "aesgcm"}, b"x", 60)
    refused(400, read_push, {"ttl": "-5"}, b"", 60)
    refused(400, read_push, {"ttl": "٥"}, b"", 60)  # not ASCII digits


def test_application_server_keys_must_be_points_on_p256() -> None:
    _, public = keys()
    assert decode_key(base64.urlsafe_b64encode(public).decode()) == public  # padding allowed
    for bad in ("", "AAAA", "not base64!", "B" * 87, 5):
        with pytest.raises(ValueError):
            decode_key(bad)

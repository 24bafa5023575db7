"""Receipt signing, batching and the address rule, without I/O."""

from __future__ import annotations

import base64
import random
import secrets
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tidings.core.models import Receipt
from tidings.core.receipts import _public, batches, payload, sign


def test_reference_verifier_accepts_genuine_and_rejects_tampered() -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    verifier = Webhook(secret)
    rng = random.Random(7)
    now = int(time.time())
    for i in range(1000):
        body = "data=" + "".join(rng.choice("abc%7B%22:,") for _ in range(rng.randint(1, 200)))
        headers = {
            "webhook-id": f"msg_{i}",
            "webhook-timestamp": str(now),
            "webhook-signature": sign(secret, f"msg_{i}", now, body),
        }
        verifier.verify(body, headers, json_parse=False)
        tampered = body[:-1] + ("x" if body[-1] != "x" else "y")
        for bad_body, bad_headers in (
            (tampered, headers),
            (body, {**headers, "webhook-id": f"msg_{i}x"}),
        ):
            with pytest.raises(WebhookVerificationError):
                verifier.verify(bad_body, bad_headers, json_parse=False)


def _r(msg: str, kind: int, targets: str, url: str = "http://a/", at: int = 1) -> Receipt:
    return Receipt(f"id-{msg}-{kind}-{targets}", "app", url, msg, kind, targets, "jk", "p", at)


def test_batches_group_per_url_and_type_and_merge_targets() -> None:
    rs = [_r("m1", 1, "r1"), _r("m1", 1, "r2", at=5), _r("m1", 2, "r1"), _r("m2", 1, "r3")]
    rs.append(_r("m3", 1, "r4", url="http://b/"))
    groups = dict(batches(rs))
    assert set(groups) == {
        ("app", "http://a/", 1),
        ("app", "http://a/", 2),
        ("app", "http://b/", 1),
    }
    data = payload(groups[("app", "http://a/", 1)])
    assert data == {
        "m1": {"type": 1, "targets": "r1,r2", "timestamp": 5, "param": "p", "jobkey": "jk"},
        "m2": {"type": 1, "targets": "r3", "timestamp": 1, "param": "p", "jobkey": "jk"},
    }


def test_quota_receipts_with_different_counts_are_not_merged() -> None:
    one = '{"ack": "1", "quota": "1"}'
    two = '{"ack": "2", "quota": "1"}'
    rs = [
        Receipt("a", "app", "http://a/", "m1", 128, "r1", None, None, 1, 0, one),
        Receipt("b", "app", "http://a/", "m1", 128, "r2", None, None, 1, 0, two),
        Receipt("c", "app", "http://a/", "m1", 128, "r3", None, None, 2, 0, one),
    ]
    groups = batches(rs)
    assert [key for key, _ in groups] == [("app", "http://a/", 128)] * 2
    assert [payload(g) for _, g in groups] == [
        {
            "m1": {
                "type": 128,
                "targets": "r1,r3",
                "timestamp": 2,
                "extra": {"ack": "1", "quota": "1"},
            }
        },
        {"m1": {"type": 128, "targets": "r2", "timestamp": 1, "extra": {"ack": "2", "quota": "1"}}},
    ]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a01:203", False),  # NAT64 of 10.1.2.3
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("224.0.0.1", False),
    ],
)
def test_only_public_addresses_are_allowed(address: str, public: bool) -> None:
    assert _public(address) is public

"""SDK version policy end to end: old SDKs refused at registration, deprecated ones counted."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import RawDevice
from tests.e2e.mgmt import api, create_app, send_to, sign_up
from tests.e2e.test_management import assert_error
from tidings.compliance.sdk_policy import below
from tidings.node import Node

OP = "op-secret"


@pytest.mark.parametrize(
    ("version", "bound", "result"),
    [
        ("1.9", "1.10", True),
        ("1.10.0", "1.9", False),
        ("2.0", "2.0.0", False),
        ("2.0.0-beta", "2.0.0", False),
        ("", "1.0", True),
        ("junk", "1.0", True),
        ("0.9", "", False),
    ],
)
def test_version_order(version: str, bound: str, result: bool) -> None:
    assert below(version, bound) is result


async def register(node: Node, app, version: str | None):  # type: ignore[no-untyped-def]
    async with RawDevice.connect(node) as raw:
        await raw.hello()
        sdk = {"name": "tidings-python", **({"version": version} if version else {})}
        return await raw.register(app, sdk=sdk)


async def test_policy_refuses_old_sdks_and_counts_versions(node: Node) -> None:
    dev = await sign_up(node)
    app = await create_app(node, dev)
    async with api(node, OP) as op, dev.client(node) as c:
        bad = {"sdk": "tidings-python", "min_version": "2.0", "deprecated_below": "1.0"}
        assert_error(await op.post("/sdk-policies", json=bad), 400, "invalid_field")
        assert_error(
            await op.post("/sdk-policies", json={"sdk": "x", "min_version": "new"}),
            400,
            "invalid_field",
        )
        assert_error(await c.post("/sdk-policies", json={"sdk": "x"}), 403, "forbidden")
        for v in ("1.0.0", "1.5.0", "2.1.0"):
            assert (await register(node, app, v))["status"] == 200
        policy = {"sdk": "tidings-python", "min_version": "1.2", "deprecated_below": "2.0"}
        r = await op.post("/sdk-policies", json=policy)
        assert r.status_code == 200
        assert (await c.get("/sdk-policies")).json()["policies"][0]["min_version"] == "1.2"
        refused = await register(node, app, "1.1.9")
        assert refused["code"] == 22031
        assert refused["reason"] == (
            "SDK tidings-python 1.1.9 is no longer supported; upgrade to 1.2 or later"
        )
        assert (await register(node, app, None))["code"] == 22031  # no version: not proven
        assert (await register(node, app, "1.2.0"))["status"] == 200  # deprecated: served
        r = await c.get(f"/apps/{app.app.app_id}/sdk-versions")
        assert r.json()["versions"] == [
            {"sdk_name": "tidings-python", "sdk_version": v, "devices": 1, "status": s}
            for v, s in [
                ("1.0.0", "unsupported"),
                ("1.2.0", "deprecated"),
                ("1.5.0", "deprecated"),
                ("2.1.0", "supported"),
            ]
        ]
        other = await sign_up(node)
        async with other.client(node) as oc:
            assert_error(await oc.get(f"/apps/{app.app.app_id}/sdk-versions"), 404, "not_found")


async def test_package_misuse_is_refused_and_recorded(node: Node) -> None:
    dev = await sign_up(node)
    app = await create_app(node, dev)
    for _ in range(2):
        r = await send_to(node, app.app_secret, "com.other.app", "some-regid")
        assert r["code"] == 22022
    async with RawDevice.connect(node) as raw:
        await raw.hello()
        refused = await raw.register(app, package="com.other.app")
        assert refused["code"] == 22022
    async with api(node, OP) as op, dev.client(node) as c:
        assert_error(await c.get("/misuse-signals"), 403, "forbidden")
        signals = (await op.get(f"/misuse-signals?app_id={app.app.app_id}")).json()["signals"]
        by_kind = {s["kind"]: s for s in signals}
        assert by_kind["sender_package"]["count"] == 2
        assert "com.other.app" in by_kind["sender_package"]["detail"]
        assert by_kind["device_package"]["count"] == 1
        assert "com.other.app" in by_kind["device_package"]["detail"]
        assert (await op.get("/misuse-signals?app_id=0")).json()["signals"] == []

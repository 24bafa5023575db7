"""Management API operations for platform rules: SDK version policy, misuse signals."""

from __future__ import annotations

from starlette.responses import Response

from tidings.api.management import OPERATOR, Ctx, Field, Op, ok
from tidings.compliance.accounts import actor_of


async def list_sdk_policies(ctx: Ctx) -> Response:
    found = await ctx.api.store.accounts.sdk_policies()
    return ok({"policies": [p.public() for p in found]})


async def set_sdk_policy(ctx: Ctx) -> Response:
    b = ctx.body
    policy = await ctx.api.sdk.set(
        b.get("sdk"),
        b.get("min_version"),
        b.get("deprecated_below"),
        actor_of(ctx.caller),
        ctx.source,
    )
    return ok({"policy": policy.public()})


async def app_sdk_versions(ctx: Ctx) -> Response:
    app = await ctx.api.accounts.app(ctx.caller, ctx.param("app_id"))
    versions = await ctx.api.sdk.app_versions(app.app_id, ctx.region_store(app))
    return ok({"app_id": app.app_id, "versions": versions})


async def misuse_signals(ctx: Ctx) -> Response:
    app_id = ctx.request.query_params.get("app_id") or None
    found = await ctx.api.store.accounts.misuse_signals(app_id, ctx.limit())
    return ok({"signals": found})


_S = "string"
OPS = [
    Op("GET", "/sdk-policies", list_sdk_policies, "SDK version policies", tag="sdk"),
    Op(
        "POST",
        "/sdk-policies",
        set_sdk_policy,
        "Set one SDK's policy (replaces it; empty versions remove a bound)",
        OPERATOR,
        {
            "sdk": Field(_S, True, "SDK name as devices report it (sdk.name)", 64),
            "min_version": Field(_S, False, "devices below are refused at registration", 64),
            "deprecated_below": Field(_S, False, "devices below are served and counted", 64),
        },
        tag="sdk",
    ),
    Op(
        "GET",
        "/apps/{app_id}/sdk-versions",
        app_sdk_versions,
        "Devices of an app by SDK name and version, with their policy status",
        tag="sdk",
    ),
    Op(
        "GET",
        "/misuse-signals",
        misuse_signals,
        "Package-binding misuse signals per app (?app_id=&limit=)",
        OPERATOR,
        tag="operator",
    ),
]

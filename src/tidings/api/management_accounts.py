"""Management API operations for accounts: sign-up, login, tokens, apps (``/api/v1``)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from tidings.api.management import (
    ADMIN_TOKEN_ID,
    ANY,
    COOKIE,
    OPERATOR,
    PREFIX,
    PUBLIC,
    Ctx,
    Field,
    Op,
    ok,
)
from tidings.compliance.account_models import AccountState
from tidings.compliance.accounts import not_found
from tidings.core.models import App
from tidings.errors import ManagementError

_STATES = ", ".join(s.value for s in AccountState)


def app_json(app: App, owner: str | None) -> dict[str, Any]:
    return {
        "app_id": app.app_id,
        "name": app.name,
        "package": app.package,
        "privacy_policy_version": app.privacy_policy_version,
        "created_at": app.created_at,
        "developer_id": owner,
        "region": app.region,
    }


async def sign_up(ctx: Ctx) -> Response:
    b = ctx.body
    dev = await ctx.api.accounts.sign_up(
        b.get("email"), b.get("password"), b.get("legal_name"), b.get("region"), ctx.source
    )
    return ok({"developer": dev.public()}, 201)


async def login(ctx: Ctx) -> Response:
    dev, token = await ctx.api.accounts.login(
        ctx.body.get("email"), ctx.body.get("password"), ctx.source
    )
    response = ok({"developer": dev.public()})
    response.set_cookie(
        COOKIE,
        token,
        max_age=ctx.api.settings.session_ttl_s,
        path=PREFIX,
        httponly=True,
        samesite="strict",
    )
    return response


async def logout(ctx: Ctx) -> Response:
    session = ctx.request.cookies.get(COOKIE)
    if session:
        await ctx.api.accounts.logout(session, ctx.caller, ctx.source)
    response = ok({"signed_out": bool(session)})
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def regions(ctx: Ctx) -> Response:
    on_node = set(ctx.api.residency.served)
    table = ctx.api.residency.table
    return ok({"regions": [{**r.public(), "on_this_node": r.code in on_node} for r in table]})


async def me(ctx: Ctx) -> Response:
    return ok({"developer": ctx.caller.public()})


async def list_tokens(ctx: Ctx) -> Response:
    creds = await ctx.api.store.accounts.credentials(ctx.caller.developer_id, "api")
    return ok({"tokens": [c.public() for c in creds]})


async def create_token(ctx: Ctx) -> Response:
    if ctx.caller.developer_id == ADMIN_TOKEN_ID:  # no account to hold it
        raise ManagementError(
            403, "forbidden", "the admin token is a credential itself; tokens belong to accounts"
        )
    cred, clear = await ctx.api.accounts.create_token(
        ctx.caller, ctx.body.get("name"), ctx.source, ctx.body.get("expires_in_days")
    )
    return ok({"token": {**cred.public(), "secret": clear}}, 201)


async def revoke_token(ctx: Ctx) -> Response:
    await ctx.api.accounts.revoke_token(ctx.caller, ctx.param("token_id"), ctx.source)
    return ok({"revoked": ctx.param("token_id")})


async def list_apps(ctx: Ctx) -> Response:
    from tidings.compliance.accounts import scope

    apps = await ctx.api.store.accounts.apps_of(scope(ctx.caller))
    return ok({"apps": [app_json(a, owner) for a, owner in apps]})


async def create_app(ctx: Ctx) -> Response:
    b = ctx.body
    new = await ctx.api.accounts.create_app(
        ctx.caller, b.get("name"), b.get("package"), b.get("privacy_policy_version"), ctx.source
    )
    return ok({"app": {**app_json(new.app, ctx.caller.developer_id), **new.public()}}, 201)


async def get_app(ctx: Ctx) -> Response:
    app = await ctx.api.accounts.app(ctx.caller, ctx.param("app_id"))
    return ok({"app": app_json(app, await ctx.api.store.accounts.app_owner(app.app_id))})


async def rotate_secrets(ctx: Ctx) -> Response:
    new, owner = await ctx.api.accounts.rotate_secrets(ctx.caller, ctx.param("app_id"), ctx.source)
    return ok({"app": {**app_json(new.app, owner), **new.public()}})


async def delete_app(ctx: Ctx) -> Response:
    reg_ids = await ctx.api.accounts.delete_app(ctx.caller, ctx.param("app_id"), ctx.source)
    forget = ctx.api.services.get("forget_device")
    if forget is not None:
        for reg_id in reg_ids:
            forget(reg_id)
    return ok({"deleted": ctx.param("app_id"), "devices": len(reg_ids)})


async def list_developers(ctx: Ctx) -> Response:
    state = ctx.request.query_params.get("state") or None
    if state is not None and state not in {s.value for s in AccountState}:
        raise ManagementError(400, "invalid_field", f"state must be one of {_STATES}")
    devs = await ctx.api.store.accounts.developers(state)
    return ok({"developers": [d.public() for d in devs]})


async def get_developer(ctx: Ctx) -> Response:
    dev = await ctx.api.store.accounts.developer(ctx.param("developer_id"))
    if dev is None:
        raise not_found("developer")
    return ok({"developer": dev.public()})


_S = "string"
OPS = [
    Op(
        "POST",
        "/developers",
        sign_up,
        "Sign up as a developer",
        PUBLIC,
        {
            "email": Field(_S, True, "login email", 254),
            "password": Field(_S, True, "10+ characters, at least 5 different", 256),
            "legal_name": Field(_S, True, "the contracting party's legal name", 256),
            "region": Field(_S, True, "distribution region code (GET /regions)", 8),
        },
        201,
        "accounts",
    ),
    Op(
        "POST",
        "/session",
        login,
        "Sign in: sets the login cookie",
        PUBLIC,
        {"email": Field(_S, True, max_length=254), "password": Field(_S, True, max_length=256)},
        tag="accounts",
    ),
    Op("DELETE", "/session", logout, "Sign out (revokes the session)", ANY, tag="accounts"),
    Op(
        "GET",
        "/regions",
        regions,
        "Distribution regions and their entities",
        PUBLIC,
        tag="accounts",
    ),
    Op("GET", "/me", me, "The calling account", tag="accounts"),
    Op(
        "GET",
        "/tokens",
        list_tokens,
        "Your personal API tokens (never their secrets)",
        tag="tokens",
    ),
    Op(
        "POST",
        "/tokens",
        create_token,
        "Create a personal API token (its secret is shown once)",
        fields={
            "name": Field(_S, True, "a label", 128),
            "expires_in_days": Field("integer", False, "1..3650; default: until revoked"),
        },
        status=201,
        tag="tokens",
    ),
    Op("DELETE", "/tokens/{token_id}", revoke_token, "Revoke a token", tag="tokens"),
    Op("GET", "/apps", list_apps, "Your apps (operators: every app)", tag="apps"),
    Op(
        "POST",
        "/apps",
        create_app,
        "Create an app (AppKey and AppSecret shown once)",
        fields={
            "name": Field(_S, True, "display name", 128),
            "package": Field(_S, True, "Android package name", 255),
            "privacy_policy_version": Field(_S, False, "current privacy-policy version", 64),
        },
        status=201,
        tag="apps",
    ),
    Op("GET", "/apps/{app_id}", get_app, "One app", tag="apps"),
    Op("DELETE", "/apps/{app_id}", delete_app, "Delete an app and its devices", tag="apps"),
    Op(
        "POST",
        "/apps/{app_id}/secrets",
        rotate_secrets,
        "Rotate AppKey and AppSecret (new ones shown once; old ones stop at once)",
        tag="apps",
    ),
    Op("GET", "/developers", list_developers, "Developers (?state=…)", OPERATOR, tag="operator"),
    Op(
        "GET",
        "/developers/{developer_id}",
        get_developer,
        "One developer",
        OPERATOR,
        tag="operator",
    ),
]

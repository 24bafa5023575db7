"""Management API operations for terms, account states and the audit log (``/api/v1``)."""

from __future__ import annotations

from starlette.responses import Response

from tidings.api.management import OPERATOR, Ctx, Field, Op, ok
from tidings.compliance.account_models import Role
from tidings.compliance.accounts import actor_of, not_found
from tidings.errors import ManagementError


async def list_terms(ctx: Ctx) -> Response:
    dev = ctx.caller if ctx.caller.role == Role.DEVELOPER else None
    return ok({"terms": await ctx.api.terms.announcements(dev)})


async def get_terms(ctx: Ctx) -> Response:
    terms = await ctx.api.store.accounts.terms_version(ctx.param("version"))
    if terms is None:
        raise not_found("terms version")
    return ok({"terms": terms.public()})


async def publish_terms(ctx: Ctx) -> Response:
    b = ctx.body
    terms = await ctx.api.terms.publish(
        b.get("version"), b.get("text"), b.get("effective_at"), actor_of(ctx.caller), ctx.source
    )
    return ok({"terms": terms.public()}, 201)


async def accept_terms(ctx: Ctx) -> Response:
    if ctx.caller.role != Role.DEVELOPER:
        raise ManagementError(403, "forbidden", "developers accept terms; operators publish them")
    acceptance = await ctx.api.terms.accept(ctx.caller, ctx.param("version"), ctx.source)
    return ok({"acceptance": acceptance.public()}, 201)


async def list_acceptances(ctx: Ctx) -> Response:
    who = None if ctx.caller.role == Role.OPERATOR else ctx.caller.developer_id
    found = await ctx.api.store.accounts.acceptances(who)
    return ok({"acceptances": [a.public() for a in found]})


async def my_notices(ctx: Ctx) -> Response:
    found = await ctx.api.store.accounts.transitions(ctx.caller.developer_id)
    return ok({"developer": ctx.caller.public(), "notices": [t.public() for t in found]})


async def developer_transitions(ctx: Ctx) -> Response:
    developer_id = ctx.param("developer_id")
    if await ctx.api.store.accounts.developer(developer_id) is None:
        raise not_found("developer")
    found = await ctx.api.store.accounts.transitions(developer_id)
    return ok({"transitions": [t.public() for t in found]})


async def notify(ctx: Ctx) -> Response:
    cure = ctx.body.get("cure_days")
    if cure is not None and not 1 <= cure <= 365:
        raise ManagementError(400, "invalid_field", "cure_days must be 1..365")
    dev = await ctx.api.states.notify(
        ctx.param("developer_id"), ctx.body.get("reason"), actor_of(ctx.caller), ctx.source, cure
    )
    return ok({"developer": dev.public()})


async def suspend(ctx: Ctx) -> Response:
    dev = await ctx.api.states.suspend(
        ctx.param("developer_id"),
        ctx.body.get("reason"),
        actor_of(ctx.caller),
        ctx.source,
        bool(ctx.body.get("material", False)),
    )
    return ok({"developer": dev.public()})


async def reinstate(ctx: Ctx) -> Response:
    dev = await ctx.api.states.reinstate(
        ctx.param("developer_id"), ctx.body.get("reason"), actor_of(ctx.caller), ctx.source
    )
    return ok({"developer": dev.public()})


async def terminate(ctx: Ctx) -> Response:
    dev = await ctx.api.states.terminate(
        ctx.param("developer_id"),
        ctx.body.get("reason"),
        actor_of(ctx.caller),
        ctx.source,
        ctx.body.get("cause", "breach"),
    )
    return ok({"developer": dev.public()})


async def audit_log(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    since, limit = ctx.query_int("since", 0, -(2**63), 2**63 - 1), ctx.limit()
    if ctx.caller.role == Role.OPERATOR:
        who = q.get("developer_id") or None
    else:
        who = ctx.caller.developer_id
    found = await ctx.api.store.accounts.audit_entries(who, since, q.get("action") or None, limit)
    return ok({"entries": [e.public() for e in found]})


_S, _B = "string", "boolean"
_REASON = {"reason": Field(_S, True, "why (shown to the developer)", 1000)}
OPS = [
    Op("GET", "/terms", list_terms, "Terms versions and announcements", tag="terms"),
    Op("GET", "/terms/{version}", get_terms, "One terms version with its text", tag="terms"),
    Op(
        "POST",
        "/terms",
        publish_terms,
        "Publish a terms version",
        OPERATOR,
        {
            "version": Field(_S, True, "version name", 32),
            "text": Field(_S, True, "the terms text", 60_000),
            "effective_at": Field(_S, False, "ISO 8601 date-time (default: now)", 64),
        },
        201,
        "terms",
    ),
    Op(
        "POST",
        "/terms/{version}/acceptance",
        accept_terms,
        "Accept a terms version",
        status=201,
        tag="terms",
    ),
    Op("GET", "/acceptances", list_acceptances, "Terms acceptances (yours)", tag="terms"),
    Op("GET", "/me/notices", my_notices, "Your account state and its history", tag="accounts"),
    Op(
        "GET",
        "/developers/{developer_id}/transitions",
        developer_transitions,
        "A developer's account state history",
        OPERATOR,
        tag="operator",
    ),
    Op(
        "POST",
        "/developers/{developer_id}/notify",
        notify,
        "Breach notice with a cure deadline",
        OPERATOR,
        {**_REASON, "cure_days": Field("integer", False, "days to cure (default setting)")},
        tag="operator",
    ),
    Op(
        "POST",
        "/developers/{developer_id}/suspend",
        suspend,
        "Suspend (after the cure deadline, or at once with material)",
        OPERATOR,
        {**_REASON, "material": Field(_B, False, "material breach: no cure period")},
        tag="operator",
    ),
    Op(
        "POST",
        "/developers/{developer_id}/reinstate",
        reinstate,
        "Back to active",
        OPERATOR,
        _REASON,
        tag="operator",
    ),
    Op(
        "POST",
        "/developers/{developer_id}/terminate",
        terminate,
        "Terminate: cause breach (suspended), material (at once) or without_cause (notice)",
        OPERATOR,
        {**_REASON, "cause": Field(_S, False, "breach | material | without_cause", 16)},
        tag="operator",
    ),
    Op("GET", "/audit", audit_log, "Audit log (?since=&action=&limit=; operators: &developer_id=)"),
]

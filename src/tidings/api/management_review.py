"""Management API operations for staff content review (``/api/v1/review``; operators only).

The same operations as the older ``/admin/review`` endpoints (kept for existing scripts), with the
management API's authentication, error shape and audit log.
"""

from __future__ import annotations

from starlette.responses import Response

from tidings.api.admin import held_json
from tidings.api.management import OPERATOR, Ctx, Field, Op, ok
from tidings.compliance.accounts import actor_of, not_found
from tidings.compliance.moderation import ReviewDesk
from tidings.errors import ComplianceError, ManagementError


def _desk(ctx: Ctx) -> ReviewDesk:
    desk = ctx.api.services.get("review")
    if not isinstance(desk, ReviewDesk):
        raise ManagementError(404, "not_found", "content review is not running on this node")
    return desk


async def review_queue(ctx: Ctx) -> Response:
    app_id = ctx.request.query_params.get("app_id") or None
    items = await _desk(ctx).held_messages(app_id, ctx.limit())
    return ok({"held": [held_json(i) for i in items]})


async def review_item(ctx: Ctx) -> Response:
    msg_id = ctx.param("msg_id")
    found = await _desk(ctx).show(msg_id)
    if found is None:
        raise not_found("message in the review queue")
    item, decisions = found
    return ok({"message": held_json(item), "decisions": decisions})


async def app_review(ctx: Ctx) -> Response:
    """A developer's own view: the app's messages held for review and those rejected."""
    app = await ctx.api.accounts.app(ctx.caller, ctx.param("app_id"))
    store = ctx.region_store(app)  # its region's store only (409 where it is not served)
    held = await store.held_messages(app.app_id, 100)
    rejected = await store.rejections(app.app_id, 100)
    return ok({"held": [held_json(i) for i in held], "rejected": rejected})


async def _decide(ctx: Ctx, approve: bool) -> Response:
    desk = _desk(ctx)
    msg_id = ctx.param("msg_id")
    if await desk.find(msg_id) is None:
        raise not_found("message in the review queue")
    actor = actor_of(ctx.caller)
    reason = ctx.body.get("reason", "")
    try:
        item = await desk.decide(msg_id, approve, actor, reason)
    except ComplianceError as exc:
        raise ManagementError(409, "not_held", str(exc)) from None
    action = "review_approve" if approve else "review_reject"
    await ctx.api.store.accounts.audit(actor, None, action, msg_id, ctx.source, "ok", reason)
    return ok({"message": held_json(item)})


async def approve_held(ctx: Ctx) -> Response:
    return await _decide(ctx, True)


async def reject_held(ctx: Ctx) -> Response:
    return await _decide(ctx, False)


_REASON = {"reason": Field("string", False, "recorded in the decision log", 512)}
OPS = [
    Op(
        "GET",
        "/apps/{app_id}/review",
        app_review,
        "The app's held and rejected messages (its developer, or operators)",
        tag="review",
    ),
    Op(
        "GET",
        "/review/queue",
        review_queue,
        "Held messages (?app_id=&limit=)",
        OPERATOR,
        tag="review",
    ),
    Op(
        "GET",
        "/review/{msg_id}",
        review_item,
        "A held message and its decisions",
        OPERATOR,
        tag="review",
    ),
    Op(
        "POST",
        "/review/{msg_id}/approve",
        approve_held,
        "Release a held message for delivery",
        OPERATOR,
        _REASON,
        tag="review",
    ),
    Op(
        "POST",
        "/review/{msg_id}/reject",
        reject_held,
        "Reject a held message",
        OPERATOR,
        _REASON,
        tag="review",
    ),
]

"""``tidings`` commands for staff and developers: policy versions, consent, data-subject rights
and content review. They work on the store directly (the management API will take them over);
review decisions that must reach connected devices go through the running server's admin API.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import click

from tidings.cli.common import (
    emit,
    store_options,
    with_app_store,
    with_device_store,
    with_residency,
    with_store,
)
from tidings.residency import Residency

# --- policy versions ----------------------------------------------------------------------------


@click.group("policy")
def policy() -> None:
    """Privacy-policy versions of an app."""


@policy.command("add")
@store_options
@click.option("--app-id", required=True)
@click.option("--version", "version", required=True, help="Version name, e.g. 2026-11.")
@click.option("--url", required=True, help="Where the policy text is published.")
@click.option("--published-at", type=int, default=None, help="Epoch ms [now].")
@click.option(
    "--fresh-consent/--no-fresh-consent",
    default=True,
    show_default=True,
    help="Whether consent to older versions stops being valid.",
)
@click.option("--current/--not-current", default=True, show_default=True)
def policy_add(
    data_dir: str | None,
    database_url: str | None,
    app_id: str,
    version: str,
    url: str,
    published_at: int | None,
    fresh_consent: bool,
    current: bool,
) -> None:
    """Publish a policy version; by default devices must now consent to it to receive pushes."""
    from tidings.compliance import consent

    p = with_app_store(
        data_dir,
        database_url,
        app_id,
        lambda s: consent.add_policy(s, app_id, version, url, published_at, fresh_consent, current),
    )
    emit(dataclasses.asdict(p))


@policy.command("list")
@store_options
@click.option("--app-id", required=True)
def policy_list(data_dir: str | None, database_url: str | None, app_id: str) -> None:
    """List an app's policy versions, oldest first."""
    for p in with_app_store(data_dir, database_url, app_id, lambda s: s.policy_versions(app_id)):
        emit(dataclasses.asdict(p))


# --- consent ------------------------------------------------------------------------------------


@click.group("consent")
def consent_group() -> None:
    """The consent ledger."""


@consent_group.command("verify")
@store_options
@click.option("--app-id", default=None, help="Only this app [every app].")
def consent_verify(data_dir: str | None, database_url: str | None, app_id: str | None) -> None:
    """Check the hash chain of the ledger; print each broken row and exit 1 if any."""
    from tidings.compliance import consent

    async def verify(res: Residency) -> list[Any]:
        problems = []
        for store in res.regional.values():  # each region keeps its own ledgers
            if app_id is None or await store.app_by_id(app_id) is not None:
                problems += await consent.verify(store, app_id)
        return problems

    problems = with_residency(data_dir, database_url, verify)
    for p in problems:
        emit(dataclasses.asdict(p))
    if problems:
        sys.exit(1)
    emit({"ok": True})


@consent_group.command("history")
@store_options
@click.option("--app-id", required=True)
@click.option("--regid", required=True)
def consent_history(
    data_dir: str | None, database_url: str | None, app_id: str, regid: str
) -> None:
    """The ledger records of one device."""
    from tidings.compliance import consent

    for r in with_app_store(
        data_dir, database_url, app_id, lambda s: consent.history(s, app_id, regid)
    ):
        emit(dataclasses.asdict(r))


# --- data-subject rights ------------------------------------------------------------------------


@click.group("device")
def device_group() -> None:
    """Data-subject requests about one device."""


@device_group.command("export")
@store_options
@click.option("--regid", required=True)
def device_export(data_dir: str | None, database_url: str | None, regid: str) -> None:
    """Print everything Tidings holds about the device, as one JSON document."""
    from tidings.compliance import erasure

    emit(with_device_store(data_dir, database_url, regid, lambda s: erasure.export(s, regid)))


@device_group.command("erase")
@store_options
@click.option("--regid", required=True)
def device_erase(data_dir: str | None, database_url: str | None, regid: str) -> None:
    """Erase the device's data; the pseudonymous consent records stay. Prints the erased record."""
    from tidings.compliance import erasure

    erased = with_device_store(data_dir, database_url, regid, lambda s: erasure.erase(s, regid))
    emit(dataclasses.asdict(erased))


# --- content review -----------------------------------------------------------------------------


@click.group("review")
def review_group() -> None:
    """Content review: rules (in the store) and the held-message queue (through the server)."""


@review_group.group("rule")
def rule_group() -> None:
    """Review rules; changes apply to the next send, no restart needed."""


@rule_group.command("add")
@store_options
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["term", "regex", "link_deny", "link_allow", "audience"]),
)
@click.option("--pattern", required=True, help="Term, regex, domain or device count.")
@click.option("--app-id", default=None, help="Only this app [every app].")
@click.option("--action", type=click.Choice(["hold", "reject"]), default=None)
def rule_add(
    data_dir: str | None,
    database_url: str | None,
    kind: str,
    pattern: str,
    app_id: str | None,
    action: str | None,
) -> None:
    """Add a rule and print it."""
    from tidings.compliance import moderation

    rule = with_store(
        data_dir, database_url, lambda s: moderation.add_rule(s, kind, pattern, app_id, action)
    )
    emit(dataclasses.asdict(rule))


@rule_group.command("list")
@store_options
@click.option("--app-id", default=None, help="Rules that apply to this app [all rules].")
def rule_list(data_dir: str | None, database_url: str | None, app_id: str | None) -> None:
    """List rules, one JSON line each."""
    for r in with_store(data_dir, database_url, lambda s: s.review_rules(app_id)):
        emit(dataclasses.asdict(r))


@rule_group.command("remove")
@store_options
@click.argument("rule_id")
def rule_remove(data_dir: str | None, database_url: str | None, rule_id: str) -> None:
    """Remove a rule (exit code 1 if there is none with that id)."""
    if not with_store(data_dir, database_url, lambda s: s.remove_review_rule(rule_id)):
        raise click.ClickException(f"no rule {rule_id}")
    emit({"removed": rule_id})


def admin_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--token", envvar="TIDINGS_ADMIN_TOKEN", required=True, help="The server's admin_token."
    )(f)
    return click.option("--api", "api_url", required=True, help="e.g. http://127.0.0.1:8470")(f)


def _admin(api_url: str, token: str, method: str, path: str, **kw: Any) -> Any:
    import httpx

    try:
        r = httpx.request(
            method,
            api_url.rstrip("/") + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            **kw,
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {api_url}: {exc}") from exc
    try:
        body = r.json()
    except ValueError:
        raise click.ClickException(f"HTTP {r.status_code} from {api_url}") from None
    if r.status_code != 200:
        raise click.ClickException(f"{body.get('error')}: {body.get('reason')}")
    return body


@review_group.command("queue")
@admin_options
@click.option("--app-id", default=None)
@click.option("--limit", type=int, default=100, show_default=True)
def review_queue(api_url: str, token: str, app_id: str | None, limit: int) -> None:
    """Messages waiting for a reviewer, oldest first, one JSON line each."""
    params: dict[str, Any] = {"limit": limit}
    if app_id:
        params["app_id"] = app_id
    for item in _admin(api_url, token, "GET", "/admin/review/queue", params=params)["held"]:
        emit(item)


def _decide(verb: str) -> Callable[..., None]:
    def command(
        api_url: str, token: str, msg_ids: tuple[str, ...], actor: str, reason: str
    ) -> None:
        for msg_id in msg_ids:
            body = {"actor": actor, "reason": reason}
            path = f"/admin/review/{msg_id}/{verb}"
            emit(_admin(api_url, token, "POST", path, json=body)["message"])

    return command


for _verb, _help in (
    ("approve", "Release held messages for delivery (expired ones are not delivered)."),
    ("reject", "Reject held messages: they are never delivered."),
):
    review_group.command(_verb, help=_help)(
        admin_options(
            click.argument("msg_ids", nargs=-1, required=True)(
                click.option("--actor", default="operator", show_default=True)(
                    click.option("--reason", default="")(_decide(_verb))
                )
            )
        )
    )


def register(main: click.Group, app: click.Group) -> None:
    app.add_command(policy)
    main.add_command(consent_group)
    main.add_command(device_group)
    main.add_command(review_group)

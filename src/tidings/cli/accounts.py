"""Operator commands: ``tidings operator``, ``terms``, ``developer``, ``sdk-policy``, ``audit``.

They call the same services as the management API (``compliance/terms.py``, ``states.py``) on
the store directly; a running node sees the result on its next request (account state and terms
are read on every sender request and device registration).
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

import click

from tidings import settings
from tidings.cli.common import emit, store_options, with_store
from tidings.compliance.account_models import Role
from tidings.compliance.accounts import AccountService
from tidings.compliance.sdk_policy import SdkPolicyService
from tidings.compliance.states import AccountStates
from tidings.compliance.terms import TermsService
from tidings.store.store import Store


def _actor(actor: str | None) -> str:
    return f"operator:{actor or getpass.getuser()}"


def _conf() -> settings.Settings:
    return settings.load()


@click.group("terms")
def terms() -> None:
    """Platform terms versions (publish, list)."""


@terms.command("publish")
@store_options
@click.option("--version", "version", required=True, help="Version name, e.g. 2026-11.")
@click.option(
    "--text-file", type=click.File("r"), required=True, help="The terms text ('-': stdin)."
)
@click.option(
    "--effective-at", default=None, help="ISO 8601 date-time with a zone [now]; not in the past."
)
@click.option("--actor", default=None, help="Who publishes (for the audit log) [$USER].")
def terms_publish(
    data_dir: str | None,
    database_url: str | None,
    version: str,
    text_file: Any,
    effective_at: str | None,
    actor: str | None,
) -> None:
    """Publish a terms version; developers must accept it within terms_grace_days of its effect."""
    text = text_file.read()

    async def go(store: Store) -> None:
        service = TermsService(store, _conf().terms_grace_days)
        published = await service.publish(version, text, effective_at, _actor(actor), "cli")
        emit({k: v for k, v in published.public().items() if k != "body"})

    with_store(data_dir, database_url, go)


@terms.command("list")
@store_options
def terms_list(data_dir: str | None, database_url: str | None) -> None:
    """Every version with its dates and how many developers accepted it, one JSON line each."""

    async def go(store: Store) -> None:
        service = TermsService(store, _conf().terms_grace_days)
        accepted: dict[str, int] = {}
        for a in await store.accounts.acceptances(None):
            accepted[a.version] = accepted.get(a.version, 0) + 1
        for entry in await service.announcements(None):
            emit({**entry, "acceptances": accepted.get(entry["version"], 0)})

    with_store(data_dir, database_url, go)


@click.group("developer")
def developer() -> None:
    """Developer accounts: list them, move them between states."""


@developer.command("list")
@store_options
@click.option("--state", default=None, help="Only developers in this state.")
def developer_list(data_dir: str | None, database_url: str | None, state: str | None) -> None:
    """Developers, one JSON line each (terminations whose notice ran out are recorded first)."""

    async def go(store: Store) -> None:
        conf = _conf()
        states = AccountStates(store, conf.cure_period_days, conf.termination_notice_days)
        await states.finish_due_terminations()
        for dev in await store.accounts.developers(state):
            emit(dev.public())

    with_store(data_dir, database_url, go)


def _transition(name: str, help_text: str, *extra: Any) -> None:
    def command(
        data_dir: str | None,
        database_url: str | None,
        developer_id: str,
        reason: str,
        actor: str | None,
        **kw: Any,
    ) -> None:
        async def go(store: Store) -> None:
            conf = _conf()
            states = AccountStates(store, conf.cure_period_days, conf.termination_notice_days)
            who = _actor(actor)
            if name == "notify":
                dev = await states.notify(developer_id, reason, who, "cli", kw.get("cure_days"))
            elif name == "suspend":
                dev = await states.suspend(developer_id, reason, who, "cli", kw["material"])
            elif name == "reinstate":
                dev = await states.reinstate(developer_id, reason, who, "cli")
            else:
                dev = await states.terminate(developer_id, reason, who, "cli", kw["cause"])
            emit(dev.public())

        with_store(data_dir, database_url, go)

    command.__doc__ = help_text
    decorated: Any = command
    for option in extra:
        decorated = option(decorated)
    decorated = click.option("--actor", default=None, help="Who acts (audit log) [$USER].")(
        decorated
    )
    decorated = click.option("--reason", required=True, help="Why; shown to the developer.")(
        decorated
    )
    decorated = click.argument("developer_id")(decorated)
    decorated = store_options(decorated)
    developer.command(name)(decorated)


_transition(
    "notify",
    "Breach notice: the developer has until the cure deadline (cure_period_days) to fix it.",
    click.option("--cure-days", type=float, default=None, help="Days to cure [setting]."),
)
_transition(
    "suspend",
    "Suspend after the cure deadline (or at once with --material): sends get 10031.",
    click.option("--material", is_flag=True, help="Material breach: no cure period."),
)
_transition("reinstate", "Back to active (breach cured, suspension or notice withdrawn).")
_transition(
    "terminate",
    "Terminate: after suspension (breach), at once (material) or after notice (without_cause).",
    click.option(
        "--cause",
        type=click.Choice(["breach", "material", "without_cause"]),
        default="breach",
        show_default=True,
    ),
)


@click.command("audit")
@store_options
@click.option("--developer-id", default=None, help="Only this developer's records.")
@click.option("--action", default=None, help="Only this action (sign_in, app_create, notify...).")
@click.option("--since", type=int, default=0, help="Epoch ms.")
@click.option("--limit", type=int, default=100, show_default=True)
def audit(
    data_dir: str | None,
    database_url: str | None,
    developer_id: str | None,
    action: str | None,
    since: int,
    limit: int,
) -> None:
    """The audit log, newest first, one JSON line each."""

    async def go(store: Store) -> None:
        for entry in await store.accounts.audit_entries(
            developer_id, since, action, max(1, min(limit, 10_000))
        ):
            emit(entry.public())

    with_store(data_dir, database_url, go)


@click.group("sdk-policy")
def sdk_policy() -> None:
    """SDK version policy: minimum supported and deprecated-below versions per SDK name."""


@sdk_policy.command("set")
@store_options
@click.option("--sdk", "sdk_name", required=True, help="SDK name as devices report it.")
@click.option("--min", "min_version", default="", help="Devices below are refused ('' = none).")
@click.option("--deprecated-below", default="", help="Devices below are served and counted.")
@click.option("--actor", default=None, help="Who sets it (audit log) [$USER].")
def sdk_policy_set(
    data_dir: str | None,
    database_url: str | None,
    sdk_name: str,
    min_version: str,
    deprecated_below: str,
    actor: str | None,
) -> None:
    """Set (replace) one SDK's policy; applies to the next device registration."""

    async def go(store: Store) -> None:
        service = SdkPolicyService(store)
        policy = await service.set(sdk_name, min_version, deprecated_below, _actor(actor), "cli")
        emit(policy.public())

    with_store(data_dir, database_url, go)


@sdk_policy.command("list")
@store_options
def sdk_policy_list(data_dir: str | None, database_url: str | None) -> None:
    """Every SDK policy, one JSON line each."""

    async def go(store: Store) -> None:
        for policy in await store.accounts.sdk_policies():
            emit(policy.public())

    with_store(data_dir, database_url, go)


@click.group("operator")
def operator() -> None:
    """Operator (staff) accounts of the management API."""


@operator.command("create")
@store_options
@click.option("--email", required=True)
@click.option("--legal-name", required=True, help="The person's name (shown in the audit log).")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin instead of a prompt."
)
def operator_create(
    data_dir: str | None,
    database_url: str | None,
    email: str,
    legal_name: str,
    password_stdin: bool,
) -> None:
    """Create an operator account; it signs in with POST /api/v1/session like a developer."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def go(store: Store) -> None:
        dev = await AccountService(store).sign_up(
            email, password, legal_name, "ROW", "cli", Role.OPERATOR, "cli"
        )
        emit(dev.public())

    with_store(data_dir, database_url, go)


def register(main: click.Group) -> None:
    main.add_command(operator)
    main.add_command(sdk_policy)
    main.add_command(terms)
    main.add_command(developer)
    main.add_command(audit)

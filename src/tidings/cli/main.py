"""The ``tidings`` command: serve, app create / list, listen (act as a device), send.

Only this module configures logging (libraries log, applications configure).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import urllib.parse
from typing import Any

import click

from tidings import __version__, settings
from tidings.cli.common import emit, store_options, with_app_store, with_residency, with_store
from tidings.errors import TidingsError
from tidings.residency import Residency
from tidings.store.store import Store

log = logging.getLogger("tidings.cli")


_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        return asyncio.run(coro)


@click.group()
@click.version_option(__version__, prog_name="tidings")
def main() -> None:
    """Tidings: a self-hosted push notification platform."""


@main.command()
@click.option("--data-dir", default=None, help="Directory for the SQLite files [./data].")
@click.option("--database-url", default=None, help="PostgreSQL URL instead of SQLite.")
@click.option("--host", default=None, help="Listen address [127.0.0.1].")
@click.option("--port", type=int, default=None, help="HTTP API port [8470].")
@click.option("--gateway-port", type=int, default=None, help="Device gateway port [8471].")
@click.option(
    "--serve-regions", default=None, help="Regions this node serves, e.g. EU,UK [every one]."
)
@click.option("--log-level", default="info", show_default=True, type=_LEVELS)
def serve(log_level: str, **flags: Any) -> None:
    """Run the HTTP API and the device gateway until SIGINT or SIGTERM."""
    _setup_logging(log_level)
    try:
        conf = settings.load(overrides=flags)
    except TidingsError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        _run(_serve(conf))
    except TidingsError as exc:
        click.echo(f"tidings: {exc}", err=True)
        sys.exit(1)


def _raise_open_file_limit() -> tuple[int, int]:
    """Each device holds a socket: lift the soft open-file limit to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit: %s", exc)
    return soft, hard


async def _serve(conf: settings.Settings) -> None:
    from tidings.node import Node

    soft, _hard = _raise_open_file_limit()
    node = Node(conf)
    try:
        await node.start()
    except OSError as exc:  # the sockets: the stores report their own errors
        raise TidingsError(f"cannot listen on {conf.host}: {exc}") from exc
    # Most garbage here is freed by reference counting; the cyclic collector's full passes walk
    # every connection's objects, so run them far less often, and never over startup objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    urls = node.urls()
    store_desc = "PostgreSQL" if conf.database_url else f"SQLite in {conf.data_dir}"
    # the same store as this server (the URL stays out of the banner: it may hold a password)
    where = (
        "--database-url $TIDINGS_DATABASE_URL"
        if conf.database_url
        else f"--data-dir {conf.data_dir}"
    )
    # the commands as this shell can run them (./scripts/run starts .venv/bin/tidings)
    prog = sys.argv[0] if os.path.basename(sys.argv[0]) == "tidings" else "tidings"
    print(
        f"Tidings {__version__} is running ({store_desc};"
        f" regions {', '.join(node.residency.served)}).\n"
        f"  sender API (Mi Push-compatible): {urls['api']}\n"
        f"  device gateway (WebSocket):      {urls['gateway']}\n"
        f"Create an app:   {prog} app create {where} --name Demo --package com.example.demo\n"
        f"Start a device:  {prog} listen --gateway {urls['gateway']} --app-id ID "
        f"--app-key KEY --package com.example.demo\n"
        f"Send:            {prog} send --api {urls['api']} --secret SECRET "
        f"--package com.example.demo --regid REGID --title Hi --description Hello\n"
        f"Stop with Ctrl-C.",
        flush=True,
    )
    if soft < 100_000:
        print(
            f"Note: the open-file limit is {soft}, so about {max(soft - 100, 0)} devices at"
            " most can connect to this process (raise the hard limit: ulimit -Hn, or"
            " LimitNOFILE).",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await node.stop()
    print("Tidings stopped.", flush=True)


@main.group()
def app() -> None:
    """Manage apps (bootstrap level)."""


@app.command("create")
@store_options
@click.option("--name", required=True)
@click.option("--package", required=True, help="Android-style package name, e.g. com.example.app")
@click.option("--privacy-policy-version", default=None)
def app_create(
    data_dir: str | None,
    database_url: str | None,
    name: str,
    package: str,
    privacy_policy_version: str | None,
) -> None:
    """Create an app; print its AppID, AppKey and AppSecret (shown only this once)."""
    from tidings.api.package_names import valid_package

    if not name.strip() or len(name) > 128:
        raise click.BadParameter("must be 1..128 characters", param_hint="--name")
    if not valid_package(package):
        raise click.BadParameter("must look like com.example.app", param_hint="--package")

    async def create(res: Residency) -> dict[str, Any]:
        from tidings.compliance.accounts import AccountService

        if await res.control.app_by_package(package) is not None:
            raise click.ClickException(f"an app with package {package} already exists")
        accounts = AccountService(res.control, residency=res)
        owner = await accounts.bootstrap_developer()  # created on first use
        new = await accounts.create_app(owner, name, package, privacy_policy_version, "cli")
        return new.public()

    emit(with_residency(data_dir, database_url, create))


@app.command("receipt-key")
@store_options
@click.argument("app_id")
def app_receipt_key(data_dir: str | None, database_url: str | None, app_id: str) -> None:
    """Print the app's key for verifying signed receipts (Standard Webhooks ``whsec_…``)."""

    async def key(store: Store) -> dict[str, Any]:
        return {"app_id": app_id, "receipt_key": await store.receipt_key(app_id)}

    emit(with_app_store(data_dir, database_url, app_id, key))


@app.command("list")
@store_options
def app_list(data_dir: str | None, database_url: str | None) -> None:
    """List apps, one JSON line each (secrets are never shown again)."""

    async def listing(store: Store) -> None:
        for a in await store.list_apps():
            emit(
                {
                    "app_id": a.app_id,
                    "name": a.name,
                    "package": a.package,
                    "privacy_policy_version": a.privacy_policy_version,
                    "region": a.region,
                }
            )

    with_store(data_dir, database_url, listing)


@main.command()
@click.option("--gateway", required=True, help="Gateway URL, e.g. ws://127.0.0.1:8471")
@click.option("--app-id", required=True)
@click.option("--app-key", required=True)
@click.option("--package", required=True)
@click.option("--alias", "aliases", multiple=True)
@click.option("--account", default=None)
@click.option("--topic", "topics", multiple=True)
@click.option("--consent-version", default=None, help="Privacy-policy version the user agreed to.")
@click.option("--state", default=None, help="State file keeping the device identity.")
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=0,
    help="Exit after this many messages (0: never).",
)
@click.option("--log-level", default="warning", show_default=True, type=_LEVELS)
def listen(
    gateway: str,
    app_id: str,
    app_key: str,
    package: str,
    aliases: tuple[str, ...],
    account: str | None,
    topics: tuple[str, ...],
    consent_version: str | None,
    state: str | None,
    count: int,
    log_level: str,
) -> None:
    """Act as a device: register, then print one JSON line per event."""
    from tidings.client.device import (
        AppConfig,
        DeviceClient,
        PushMessage,
        ReconnectRefused,
        RegistrationError,
    )

    _setup_logging(log_level)
    try:
        parts = urllib.parse.urlsplit(gateway)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise click.BadParameter(f"not a URL: {exc}", param_hint="--gateway") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise click.BadParameter("must be a ws:// or wss:// URL", param_hint="--gateway")

    async def go() -> int:
        seen = 0
        done = asyncio.Event()

        def on_message(msg: PushMessage) -> None:
            nonlocal seen
            body = msg.to_dict()
            emit(
                {
                    "event": "message",
                    **{
                        k: body[k]
                        for k in (
                            "id",
                            "seq",
                            "pass_through",
                            "title",
                            "description",
                            "payload",
                            "notify_id",
                            "notify_type",
                            "extra",
                        )
                    },
                }
            )
            seen += 1
            if count and seen >= count:
                done.set()

        client = DeviceClient(
            gateway,
            state_path=state,
            on_registered=lambda r: emit({"event": "registered", "app_id": r[0], "reg_id": r[1]}),
            on_notification=on_message,
            on_pass_through=on_message,
            on_command_result=lambda c: emit(
                {
                    "event": "command",
                    "command": c.command,
                    "args": c.args,
                    "code": c.code,
                    **({"reason": c.reason} if c.reason else {}),
                }
            ),
            on_resync=lambda a: emit({"event": "resync", "app_id": a}),
            on_error=lambda f: emit(
                {"event": "error", "code": f.get("code"), "reason": f.get("reason", "")}
            ),
        )
        client.add_app(
            AppConfig(
                app_id,
                app_key,
                package,
                aliases=aliases,
                account=account,
                topics=topics,
                consent_version=consent_version,
            )
        )
        runner = asyncio.ensure_future(client.run())
        waiter = asyncio.ensure_future(done.wait())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        await client.close()
        runner.cancel()
        try:
            await runner
        except RegistrationError as exc:
            click.echo(f"tidings: {exc}", err=True)
            return 2
        except (RuntimeError, ReconnectRefused) as exc:  # state not writable; told to go away
            click.echo(f"tidings: {exc}", err=True)
            return 1
        except asyncio.CancelledError:
            pass
        return 0

    sys.exit(asyncio.run(go()))


@main.command()
@click.option("--api", "api_url", required=True, help="API URL, e.g. http://127.0.0.1:8470")
@click.option("--secret", required=True, help="The app's AppSecret.")
@click.option("--package", required=True)
@click.option("--regid", "regids", multiple=True)
@click.option("--alias", "aliases", multiple=True)
@click.option("--account", "accounts", multiple=True)
@click.option("--topic", default=None)
@click.option("--all", "to_all", is_flag=True, help="Every device of the app.")
@click.option("--title", default="")
@click.option("--description", default="")
@click.option("--payload", default="")
@click.option("--pass-through", is_flag=True)
@click.option("--ttl", type=int, default=None, help="time_to_live in milliseconds.")
@click.option("--notify-id", type=int, default=None)
@click.option("--extra", "extras", multiple=True, help="key=value, repeatable.")
def send(
    api_url: str,
    secret: str,
    package: str,
    regids: tuple[str, ...],
    aliases: tuple[str, ...],
    accounts: tuple[str, ...],
    topic: str | None,
    to_all: bool,
    title: str,
    description: str,
    payload: str,
    pass_through: bool,
    ttl: int | None,
    notify_id: int | None,
    extras: tuple[str, ...],
) -> None:
    """Send a notification through the sender API and print the response."""
    import httpx

    from tidings.client.sender import SenderClient, SendError, UnexpectedResponse

    chosen = [
        (k, v)
        for k, v in (
            ("regid", regids),
            ("alias", aliases),
            ("account", accounts),
            ("topic", topic),
            ("all", to_all),
        )
        if v
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --regid, --alias, --account, --topic, --all")
    target, to = chosen[0]
    extra = {}
    for item in extras:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--extra")
        extra[key] = value
    client = SenderClient(api_url, secret, package)
    try:
        result = client.send(
            target,
            None if target == "all" else to,  # type: ignore[arg-type]
            title=title,
            description=description,
            payload=payload,
            pass_through=int(pass_through),
            time_to_live=ttl,
            notify_id=notify_id,
            extra=extra,
        )
    except SendError as exc:
        emit(exc.response)
        sys.exit(1)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {api_url}: {exc}") from exc
    except UnexpectedResponse as exc:
        raise click.ClickException(f"{exc}: is --api the Tidings sender API?") from exc
    finally:
        client.close()
    emit(result)


from tidings.cli import accounts, compliance  # noqa: E402  (its commands attach to the groups above)

compliance.register(main, app)
accounts.register(main)

from tidings.cli.limits import limits_group  # noqa: E402
from tidings.cli.regions import region  # noqa: E402

main.add_command(limits_group)
main.add_command(region)

if __name__ == "__main__":  # pragma: no cover
    main()

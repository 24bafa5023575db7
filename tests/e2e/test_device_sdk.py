"""The device SDK against a real gateway and against a hostile fake one: stopping, reconnecting,
bad frames, bad state files."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.e2e.helpers import Phone
from tests.e2e.test_crash import TIDINGS, free_port
from tidings.client.device import AppConfig, DeviceClient, PushMessage, ReconnectRefused
from tidings.compliance import erasure
from tidings.core.models import NewApp
from tidings.errors import ConfigError
from tidings.node import Node


def _config(app: NewApp) -> AppConfig:
    return AppConfig(app.app.app_id, app.app_key, app.app.package)


async def test_close_stops_run_while_connecting_or_backing_off(node: Node, app: NewApp) -> None:
    client = DeviceClient(node.urls()["gateway"])
    client.add_app(_config(app))
    runner = asyncio.ensure_future(client.run())
    await asyncio.sleep(0)  # run() is opening the connection: close() finds no socket yet
    await client.close()
    await asyncio.wait_for(runner, 2)
    assert not client.connected.is_set()

    down = DeviceClient(f"ws://127.0.0.1:{free_port()}", backoff_base=30, backoff_max=30)
    down.add_app(_config(app))
    runner = asyncio.ensure_future(down.run())
    await asyncio.sleep(0.3)  # refused at once, now waiting up to 30 s before the next try
    await down.close()
    await asyncio.wait_for(runner, 2)


async def test_close_stops_run_while_a_silent_host_holds_the_handshake() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the connection, never answers the upgrade
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = DeviceClient(f"ws://127.0.0.1:{port}")
    runner = asyncio.ensure_future(client.run())
    await asyncio.sleep(0.3)  # the handshake waits (its own timeout is 10 s)
    await client.close()
    await asyncio.wait_for(runner, 2)
    server.close()
    await server.wait_closed()


async def test_run_keeps_retrying_however_long_the_gateway_is_down() -> None:
    # with the default backoff about 1,000 failed tries take 4 hours: a phone offline overnight
    client = DeviceClient(
        f"ws://127.0.0.1:{free_port()}", backoff_base=0.000_01, backoff_max=0.000_01
    )
    runner = asyncio.ensure_future(client.run())
    await asyncio.sleep(3)  # thousands of refused connections
    assert not runner.done(), runner.exception()
    await client.close()
    await asyncio.wait_for(runner, 2)


HELLO = {"messageType": "hello", "uaid": "u1", "status": 200}
BAD_HELLOS = ["not json", "[]", json.dumps({"messageType": "hello", "status": 200})]
BAD_FRAMES = [
    "not json",
    "[1, 2]",
    "[" * 100_000 + "]" * 100_000,  # nested too deep for the JSON parser
    {"messageType": "notification"},
    {"messageType": "notification", "reg_id": "R", "seq": "7", "id": "m", "message": {}},
    {"messageType": "notification", "reg_id": "R", "seq": 7, "id": ["m"], "message": {}},
    {"messageType": "notification", "reg_id": "R", "seq": 7, "id": "m", "message": "text"},
    {"messageType": "notification", "reg_id": "R", "seq": 7, "id": "m", "message": {"title": 5}},
    {"messageType": "notification", "reg_id": "R", "seq": 7, "id": "m",
     "message": {"extra": {"jobkey": ["j"]}}},
    {"messageType": "resync", "reg_id": "R"},
    {"messageType": "revoke", "reg_id": "R", "notify_id": "abc"},
    {"messageType": "app_register", "status": 200, "app_id": "other", "reg_id": "Q"},
    {"messageType": "app_command", "reg_id": "R", "req": "1"},
    {"messageType": "consent", "reg_id": "R", "req": "1", "agreed": "yes", "code": 0},
    {"messageType": "error", "req": ["1"], "code": 4000},
]  # fmt: skip


async def test_bad_frames_from_the_gateway_mean_a_new_connection_not_a_crash() -> None:
    """A gateway (or something posing as one) that sends garbage: each bad frame costs a
    connection, run() goes on, and a good message afterwards is shown and acked."""
    connections: list[int] = []
    acked: list[dict[str, Any]] = []

    async def fake_gateway(ws: ServerConnection) -> None:
        n = len(connections)
        connections.append(n)
        await ws.recv()  # hello
        if n < len(BAD_HELLOS):
            await ws.send(BAD_HELLOS[n])
            await ws.wait_closed()
            return
        await ws.send(json.dumps(HELLO))
        register = json.loads(await ws.recv())
        answer = {**register, "status": 200, "code": 0, "reg_id": "R"}
        await ws.send(json.dumps(answer))
        bad = n - len(BAD_HELLOS)
        if bad < len(BAD_FRAMES):
            frame = BAD_FRAMES[bad]
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        else:
            good = {"messageType": "notification", "reg_id": "R", "seq": 1, "id": "good",
                    "message": {"title": "fine"}}  # fmt: skip
            await ws.send(json.dumps(good))
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("messageType") == "ack":
                acked.extend(frame["updates"])

    shown: list[PushMessage] = []
    async with serve(fake_gateway, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = DeviceClient(
            f"ws://127.0.0.1:{port}",
            on_notification=shown.append,
            backoff_base=0.001,
            backoff_max=0.01,
        )
        client.add_app(AppConfig("A", "k", "com.example.demo"))
        runner = asyncio.ensure_future(client.run())
        async with asyncio.timeout(20):
            while not acked and not runner.done():
                await asyncio.sleep(0.02)
        assert not runner.done(), runner.exception()
        assert [m.id for m in shown] == ["good"]
        assert acked == [{"reg_id": "R", "seq": 1, "id": "good"}]
        assert len(connections) == len(BAD_HELLOS) + len(BAD_FRAMES) + 1
        await client.close()
        await asyncio.wait_for(runner, 2)


async def test_close_code_4774_means_do_not_reconnect() -> None:
    connections: list[ServerConnection] = []

    async def stay_away(ws: ServerConnection) -> None:
        connections.append(ws)
        await ws.recv()  # hello
        await ws.close(4774, "go away")

    async with serve(stay_away, "127.0.0.1", 0) as server:
        gateway = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = DeviceClient(gateway, backoff_base=0.001, backoff_max=0.01)
        client.add_app(AppConfig("A", "k", "com.example.demo"))
        with pytest.raises(ReconnectRefused, match="go away"):
            await asyncio.wait_for(client.run(), 5)
        assert len(connections) == 1

        listen = await asyncio.create_subprocess_exec(
            *TIDINGS,
            "listen",
            "--gateway",
            gateway,
            "--app-id",
            "A",
            "--app-key",
            "k",
            "--package",
            "com.example.demo",
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(listen.communicate(), 30)
        assert listen.returncode == 1 and "not to reconnect" in err.decode()
        assert len(connections) == 2


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        "null",
        '{"uaid": 5}',
        '{"reg_ids": [1, 2]}',
        '{"reg_ids": {"A": 7}}',
        '{"seen": 5}',
        '{"jobkeys": [["j"]]}',
        '{"uaid": "u", "reg_ids": {}, "seen": [',  # cut short by a crash
    ],
)
async def test_a_state_file_of_the_wrong_shape_makes_a_new_device(
    node: Node, app: NewApp, tmp_path: Path, content: str
) -> None:
    state = tmp_path / "device.json"
    state.write_text(content)
    phone = await Phone(node, app, state=state).start()  # ignored with a warning, not a crash
    assert phone.reg_id and phone.client.uaid
    await phone.stop()
    kept = json.loads(state.read_text())  # written afresh
    assert kept["uaid"] == phone.client.uaid and kept["reg_ids"] == {app.app.app_id: phone.reg_id}


async def test_a_consent_whose_connection_is_lost_fails_at_once() -> None:
    async def lose_it(ws: ServerConnection) -> None:
        await ws.recv()  # hello
        await ws.send(json.dumps(HELLO))
        register = json.loads(await ws.recv())
        await ws.send(json.dumps({**register, "status": 200, "code": 0, "reg_id": "R"}))
        async for raw in ws:
            if json.loads(raw).get("messageType") == "consent":
                await ws.close(1011, "failed while recording it")
                return

    async with serve(lose_it, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = DeviceClient(f"ws://127.0.0.1:{port}", backoff_base=5, backoff_max=5)
        client.add_app(AppConfig("A", "k", "com.example.demo"))
        runner = asyncio.ensure_future(client.run())
        await client.wait_registered("A")
        async with asyncio.timeout(2):  # not the 10 s answer timeout
            with pytest.raises(ConnectionError):
                await client.agree("A", "v1")
            with pytest.raises(ConnectionError):
                await client.withdraw("A")  # no live connection now
        await client.close()
        await asyncio.wait_for(runner, 2)


async def test_wait_registered_gives_the_new_reg_id_after_the_device_was_erased(
    node: Node, app: NewApp
) -> None:
    registered: list[tuple[str, str]] = []
    client = DeviceClient(node.urls()["gateway"], on_registered=registered.append)
    client.add_app(_config(app))
    runner = asyncio.ensure_future(client.run())
    old = await client.wait_registered(app.app.app_id)
    await client.close()
    await runner
    await erasure.erase(node.store, old, node.hub)  # the user asked for her data to go

    runner = asyncio.ensure_future(client.run())  # the app comes back: a new uaid and regId
    new = await client.wait_registered(app.app.app_id)
    assert new != old and client.reg_ids == {app.app.app_id: new}
    assert registered == [(app.app.app_id, old), (app.app.app_id, new)]
    await client.close()
    await runner


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8471", "127.0.0.1:8471", "ws://", "ws://[bad", "ws://h:99999"]
)
def test_a_gateway_url_that_cannot_work_is_refused_at_once(url: str) -> None:
    # it was tried again and again for ever (or run() died with a ValueError)
    with pytest.raises(ConfigError, match="not a ws:// or wss:// URL"):
        DeviceClient(url)


async def test_commands_of_the_app_config_cut_off_by_a_lost_connection_log_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def lose_it(ws: ServerConnection) -> None:
        await ws.recv()  # hello
        await ws.send(json.dumps(HELLO))
        register = json.loads(await ws.recv())
        await ws.send(json.dumps({**register, "status": 200, "code": 0, "reg_id": "R"}))
        await ws.recv()  # set-alias: the server dies before answering
        await ws.close(1011)

    async with serve(lose_it, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = DeviceClient(f"ws://127.0.0.1:{port}", backoff_base=0.2, backoff_max=0.2)
        client.add_app(AppConfig("A", "k", "com.example.demo", aliases=["al"], topics=["t"]))
        runner = asyncio.ensure_future(client.run())
        await client.wait_registered("A")
        await asyncio.sleep(0.5)  # the connection is lost with both commands unanswered
        gc.collect()
        await client.close()
        await runner
    asyncio_errors = [
        r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR
    ]
    assert asyncio_errors == []  # was: "Future exception was never retrieved", once a command

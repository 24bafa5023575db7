"""The device SDK against a real gateway and against a hostile fake one: stopping, reconnecting,
bad frames, bad state files."""

from __future__ import annotations

import asyncio

from tests.e2e.test_crash import free_port
from tidings.client.device import AppConfig, DeviceClient
from tidings.core.models import NewApp
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

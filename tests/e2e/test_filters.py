"""Device filters through Mi Push's SDK: only matching devices get the message; the trace says
how many were left out."""

from __future__ import annotations

import asyncio

from xmpush.APISender import APISender
from xmpush.APITools import APITools

from tests.e2e.helpers import Phone
from tests.e2e.test_mipush_sdk import call, message
from tidings.core.models import NewApp
from tidings.node import Node


async def test_filters_on_unicast_topic_and_ephemeral(node: Node, app: NewApp) -> None:
    cn = await Phone(node, app, locale="zh_CN", model="MI 9", app_version="2.1").start()
    us = await Phone(node, app, locale="en_US", model="Pixel 8", app_version="2.0").start()
    sender, tools = APISender(app.app_secret), APITools(app.app_secret)
    both = f"{cn.reg_id},{us.reg_id}"
    r1 = await call(sender.send, message("cn only", locale="zh_CN"), both, retry_times=1)
    await call(sender.broadcast_all, message("not 2.1", app_version_not_in="2.1"), retry_times=1)
    await call(
        sender.send, message("now, mi", model="mi 9", only_send_once="1"), both, retry_times=1
    )
    await cn.wait_for(2)
    await us.wait_for(1)
    await asyncio.sleep(0.3)
    assert [m.title for m in cn.messages] == ["cn only", "now, mi"]
    assert [m.title for m in us.messages] == ["not 2.1"]
    t = (await call(tools.query_message_status, r1.data.id, retry_times=1)).data.data
    assert (t.resolved, t.device_condition_unmatch) == (1, 1)
    for p in (cn, us):
        await p.stop()

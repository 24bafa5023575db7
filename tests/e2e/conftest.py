from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.helpers import point_xmpush_at, running_node
from tidings.core.models import NewApp
from tidings.node import Node


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "data", ack_timeout_s=0.5, admin_token="op-secret") as n:
        point_xmpush_at(n)
        yield n


@pytest.fixture
async def app(node: Node) -> NewApp:
    return await node.create_app("Demo", "com.example.demo")  # ungated

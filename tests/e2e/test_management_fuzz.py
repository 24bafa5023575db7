"""Every management operation, fed odd input by an operator and a developer: never a 5xx."""

from __future__ import annotations

import random
import re
from typing import Any

from tests.e2e.mgmt import api, create_app, sign_up
from tidings.api.management_routes import all_ops
from tidings.node import Node

ODD: list[Any] = [
    None,
    0,
    -1,
    2**63,
    1.5,
    True,
    "",
    " ",
    "x" * 5000,
    "ü\u0000\ud7ff",
    "2026-13-45T99:99:99Z",
    "../../etc",
    [],
    {},
    {"a": [1]},
]
IDS = ["%00", "0" * 300, "dev_bootstrap"]


def bodies(fields: list[str], rng: random.Random) -> list[Any]:
    out: list[Any] = [None, [], "text", 5, {f: "a" for f in fields} | {"extra": 1}]
    out += [{f: rng.choice(ODD) for f in fields if rng.random() < 0.8} for _ in range(6)]
    return rng.sample(out, 3)


async def test_no_operation_answers_a_server_error(node: Node) -> None:
    rng = random.Random(5)
    dev = await sign_up(node)
    await create_app(node, dev)
    seen = 0
    async with api(node, "op-secret") as op, dev.client(node) as c:
        for client in (op, c):
            for o in all_ops() if client is op else [o for o in all_ops() if o.auth != "operator"]:
                for ident in IDS if "{" in o.path else ["x"]:
                    path = re.sub(r"{\w+}", ident or "x", o.path)
                    for body in bodies(list(o.fields), rng) if o.method == "POST" else [None]:
                        r = await client.request(
                            o.method, path, json=body, params={"limit": "zz", "since": "-"}
                        )
                        seen += 1
                        assert r.status_code < 500, (o.method, path, body, r.text)
                        if r.status_code >= 400:
                            assert set(r.json()) == {"error"}, r.text
    assert seen > 100

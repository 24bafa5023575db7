"""The regions table as data: built-in, from a file, and which regions a node serves."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_crash import TIDINGS
from tidings.compliance.regions import DEFAULT_REGIONS, RegionTable
from tidings.errors import ConfigError


def test_built_in_table_serves_all_but_mainland_china() -> None:
    table = RegionTable()
    assert table.served() == ["EU", "UK", "IN", "RU", "ROW"]
    assert table.node_regions("") == table.served()
    assert table.node_regions(" eu , UK,eu") == ["EU", "UK"]
    assert [r.code for r in table] == [r.code for r in DEFAULT_REGIONS]


@pytest.mark.parametrize(
    ("wanted", "problem"), [("XX", "unknown region 'XX'"), ("EU,CN", "CN is not served")]
)
def test_a_node_cannot_serve_unknown_or_unserved_regions(wanted: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        RegionTable().node_regions(wanted)


def test_table_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "regions.json"
    path.write_text(json.dumps([
        {"code": "EU", "entity": "Example Europe GmbH", "served": True},
        {"code": "APAC", "entity": "Example Asia Pte", "served": False},
    ]))  # fmt: skip
    table = RegionTable.load(str(path))
    assert table.served() == ["EU"] and table.get("APAC") is not None
    out = subprocess.run(
        [*TIDINGS, "region", "list", "--regions-file", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0] == {
        "code": "EU", "entity": "Example Europe GmbH", "served": True, "on_this_node": True
    }  # fmt: skip
    assert lines[1]["on_this_node"] is False


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        json.dumps([{"code": "EU", "entity": "E"}]),
        json.dumps([{"code": "EU", "entity": "E", "served": "yes"}]),
        json.dumps([{"code": "EU", "entity": "E", "served": True, "extra": 1}]),
        json.dumps([{"code": "eu", "entity": "E", "served": True}]),
        json.dumps([{"code": "EU", "entity": "E", "served": True}] * 2),
    ],
)
def test_bad_region_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "regions.json"
    path.write_text(content)
    with pytest.raises(ConfigError):
        RegionTable.load(str(path))
    out = subprocess.run(
        [*TIDINGS, "region", "list", "--regions-file", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 1 and "regions" in out.stderr


def test_serve_refuses_an_unserved_region(tmp_path: Path) -> None:
    out = subprocess.run(
        [*TIDINGS, "serve", "--data-dir", str(tmp_path), "--serve-regions", "CN", "--port", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode != 0 and "CN is not served" in out.stderr
    assert not list(tmp_path.iterdir())  # nothing was created

"""``tidings region list``: the deployment's regions, their entities and which this node serves."""

from __future__ import annotations

import click

from tidings import settings
from tidings.cli.common import emit
from tidings.compliance.regions import RegionTable
from tidings.errors import TidingsError


@click.group("region")
def region() -> None:
    """Distribution regions and data residency."""


@region.command("list")
@click.option("--regions-file", default=None, help="JSON regions table [built-in].")
@click.option("--serve-regions", default=None, help="Regions a node would serve [every one].")
def region_list(regions_file: str | None, serve_regions: str | None) -> None:
    """One JSON line per region: code, entity, served by the deployment, served by the node."""
    try:
        conf = settings.load(
            overrides={"regions_file": regions_file, "serve_regions": serve_regions}
        )
        table = RegionTable.load(conf.regions_file)
        on_node = set(table.node_regions(conf.serve_regions))
    except TidingsError as exc:
        raise click.ClickException(str(exc)) from exc
    for r in table:
        emit({**r.public(), "on_this_node": r.code in on_node})

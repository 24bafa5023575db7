"""Data residency: which store holds what.

A deployment has one **control store** and one **store per region**:

- the control store holds the platform's own records: developer accounts, credentials, terms and
  acceptances, account transitions, the audit log, misuse signals, SDK policies, the limits
  schedule, review rules, and the app registry (each app's credentials and its region);
- a region's store holds its apps' end-user data: devices, aliases, topics, messages and inboxes,
  consent ledgers, statistics, receipts, scheduled sends, held messages, plus the row of each of
  its apps (without credentials) that these join on.

On SQLite each is its own file in ``data_dir`` (``tidings-control.db``, ``tidings-eu.db``...);
on PostgreSQL the control store is the database's default schema and each region has its own
schema (``tidings_eu``...). A node opens the control store and the stores of the regions it
serves (``serve_regions``); a request for an app of any other region raises
:class:`~tidings.errors.RegionNotServed`, which each surface answers with its own clear code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from tidings.clock import Clock
from tidings.compliance.regions import RegionTable
from tidings.core.models import App
from tidings.errors import RegionNotServed
from tidings.settings import Settings
from tidings.store.engine import Engine
from tidings.store.store import Store

CONTROL = "control"


class Residency:
    """The control store and the stores of the regions this node serves."""

    def __init__(self, control: Store, regional: Mapping[str, Store], table: RegionTable) -> None:
        self.control = control
        self.regional = dict(regional)
        self.table = table

    @property
    def served(self) -> list[str]:
        return list(self.regional)

    def store(self, region: str) -> Store:
        """The store of ``region``; :class:`RegionNotServed` when this node does not serve it."""
        found = self.regional.get(region)
        if found is None:
            raise RegionNotServed(region, self.served)
        return found

    def stores(self) -> list[Store]:
        """Every store this node opened, each once, the control store first."""
        out = [self.control]
        for store in self.regional.values():
            if all(store is not seen for seen in out):
                out.append(store)
        return out

    async def start(self) -> None:
        stores = self.stores()
        await stores[0].start()  # the control store first: the regions' read through it
        await asyncio.gather(*(store.start() for store in stores[1:]))

    async def close(self) -> None:
        for store in reversed(self.stores()):
            await store.close()

    # the app registry, kept in step across the control store and the app's region

    async def create_app(self, app: App, developer_id: str) -> bool:
        """Register an owned app; False when its package is taken (in any region)."""
        region = self.store(app.region)  # refuse before anything is written
        if not await self.control.accounts.create_owned_app(app, developer_id):
            return False
        if region is not self.control:
            await region.mirror_app(app)
        return True

    async def delete_app(self, developer_id: str | None, app_id: str) -> list[str]:
        """Delete an app with all its data in its region; returns the regIds that went."""
        app = await self.control.app_by_id(app_id)
        if app is None:
            return []
        region = self.store(app.region)
        reg_ids = await region.delete_app_data(app_id) if region is not self.control else []
        return reg_ids + await self.control.accounts.delete_app(developer_id, app_id)

    async def app_store(self, app_id: str) -> tuple[App, Store] | None:
        """An app (from the registry) and its region's store; None for an unknown app."""
        app = await self.control.app_by_id(app_id)
        if app is None:
            return None
        return app, self.store(app.region)

    async def uaid_known(self, uaid: str) -> bool:
        for store in self.regional.values():
            if await store.uaid_known(uaid):
                return True
        return False


def sqlite_path(data_dir: str | Path, name: str) -> Path:
    return Path(data_dir) / f"tidings-{name.lower()}.db"


def pg_schema(region: str) -> str:
    return f"tidings_{region.lower()}"


def _engine(settings: Settings, name: str) -> Engine:
    if settings.database_url:
        from tidings.store.postgres import PostgresEngine

        schema = None if name == CONTROL else pg_schema(name)
        return PostgresEngine(settings.database_url, schema=schema)
    from tidings.store.sqlite import SQLiteEngine

    return SQLiteEngine(sqlite_path(settings.data_dir, name), batch=settings.sqlite_batch)


def open_residency(settings: Settings, clock: Clock | None = None) -> Residency:
    """Build (not start) the control store and the stores of the regions the node serves."""
    table = RegionTable.load(settings.regions_file)
    served = table.node_regions(settings.serve_regions)
    control = Store(
        _engine(settings, CONTROL),
        clock=clock,
        backlog_cap=settings.backlog_cap,
        limits_cache_s=settings.limits_cache_s,
    )
    regional = {
        code: Store(_engine(settings, code), backlog_cap=settings.backlog_cap, control=control)
        for code in served
    }
    return Residency(control, regional, table)

"""Account operations behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from tidings import ids
from tidings.compliance.account_models import (
    Acceptance,
    Credential,
    Developer,
    TermsVersion,
    Transition,
)
from tidings.core.models import App, DeviceInfo
from tidings.store.store import Store

DAY = 86_400_000


def _dev(store: Store, dev_id: str, email: str) -> Developer:
    now = store.clock.now_ms()
    return Developer(dev_id, email, "h", "L", "EU", "developer", "active", "", now, None, now)


def _app(store: Store, package: str) -> App:
    return App(ids.app_id(), "A", package, "k", ids.secret_hash(package), None, 0)


async def test_developers_credentials_and_transitions(store: Store) -> None:
    acc = store.accounts
    assert await acc.create_developer(_dev(store, "d1", "a@x.io"))
    assert not await acc.create_developer(_dev(store, "d2", "a@x.io"))  # email taken
    cred = Credential("t1", "hash1", "d1", "api", "ci", 0, None, None)
    await acc.add_credential(cred)
    assert (await acc.holder_of("hash1", "api")).developer_id == "d1"  # type: ignore[union-attr]
    assert await acc.holder_of("hash1", "session") is None
    assert not await acc.revoke_credential("d2", "t1", "api")  # not theirs
    now = store.clock.now_ms()
    move = Transition("tr1", "d1", "active", "suspended", "abuse", "op", now, None)
    assert await acc.transition(move, ["notified"]) is None  # not allowed from active
    moved = await acc.transition(move, ["active", "notified"])
    assert moved is not None and moved.state == "suspended" and moved.state_reason == "abuse"
    again = Transition("tr2", "d1", "active", "suspended", "abuse", "op", now, None)
    assert await acc.transition(again, ["active"]) is None  # the state moved on: conditional
    assert await acc.holder_of("hash1", "api") is None  # blocking revokes credentials
    assert [t.transition_id for t in await acc.transitions("d1")] == ["tr1"]


async def test_app_standing_terms_and_deletion(store: Store) -> None:
    acc = store.accounts
    await acc.create_developer(_dev(store, "d1", "a@x.io"))
    app = _app(store, "com.example.one")
    assert await acc.create_owned_app(app, "d1")
    assert not await acc.create_owned_app(_app(store, "com.example.one"), "d1")
    assert await acc.app_standing(app.app_id, DAY, app.secret_hash) is None
    assert (await acc.app_standing(app.app_id, DAY, "other"))[0] == "secret"  # type: ignore[index]
    now = store.clock.now_ms()
    assert await acc.publish_terms(TermsVersion("v1", "t", now, now))
    assert not await acc.publish_terms(TermsVersion("v1", "t", now, now))
    assert await acc.app_standing(app.app_id, DAY) is None  # within the grace period
    store.clock.advance(DAY)  # type: ignore[attr-defined]
    assert await acc.app_standing(app.app_id, DAY) == (
        "terms",
        "terms version v1 not accepted; accept it to send again",
    )
    assert await acc.accept_terms(Acceptance("d1", "v1", now, "127.0.0.1"))
    assert not await acc.accept_terms(Acceptance("d1", "v1", now, "127.0.0.1"))
    assert await acc.app_standing(app.app_id, DAY) is None
    later = store.clock.now_ms() + DAY
    assert await acc.publish_terms(TermsVersion("v2", "t", now, later))
    assert await acc.publish_terms(TermsVersion("v3", "t", now, later + 10 * DAY))
    store.clock.advance(2 * DAY)  # type: ignore[attr-defined]
    standing = await acc.app_standing(app.app_id, DAY)
    assert standing is not None and "terms version v2 not accepted" in standing[1]
    assert await acc.accept_terms(Acceptance("d1", "v3", now, "127.0.0.1"))  # a later one counts
    assert await acc.app_standing(app.app_id, DAY) is None
    reg = await store.register_device(app.app_id, "u1", DeviceInfo())
    assert await acc.delete_app("d2", app.app_id) == []  # not theirs: nothing happens
    assert await acc.delete_app("d1", app.app_id) == [reg]
    assert await store.app_by_id(app.app_id) is None and await store.get_device(reg) is None


async def test_audit_log_is_newest_first_and_per_developer(store: Store) -> None:
    acc = store.accounts
    await acc.audit("developer:d1", "d1", "sign_in", source="1.2.3.4")
    store.clock.advance(5)  # type: ignore[attr-defined]
    await acc.audit("developer:d2", "d2", "sign_in", outcome="failed")
    store.clock.advance(5)  # type: ignore[attr-defined]
    await acc.audit("operator:o", "d1", "notify", "d1")
    assert [e.action for e in await acc.audit_entries("d1")] == ["notify", "sign_in"]
    assert [e.developer_id for e in await acc.audit_entries(None, action="sign_in")] == ["d2", "d1"]
    assert len(await acc.audit_entries(None, limit=2)) == 2


async def test_misuse_signals_are_counted_per_detail(store: Store) -> None:
    acc = store.accounts
    await acc.record_misuse("a1", "sender_package", "package 'x'")
    store.clock.advance(5)  # type: ignore[attr-defined]
    await acc.record_misuse("a1", "sender_package", "package 'x'")
    await acc.record_misuse("a2", "device_package", "package 'y'")
    rows = await acc.misuse_signals("a1")
    assert [(r["kind"], r["count"], r["last_at"] - r["first_at"]) for r in rows] == [  # type: ignore[operator]
        ("sender_package", 2, 5)
    ]
    assert len(await acc.misuse_signals()) == 2

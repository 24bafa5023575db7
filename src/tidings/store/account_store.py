"""The accounts part of the storage port: ``Store.accounts`` (developers, credentials, terms,
account states, SDK policy, audit log): async methods running ``ops_accounts``, ``ops_terms``
and ``ops_sdk`` on the engine.
"""

from __future__ import annotations

from tidings.clock import Clock
from tidings.compliance.account_models import (
    Acceptance,
    AuditEntry,
    Credential,
    Developer,
    TermsVersion,
    Transition,
)
from tidings.compliance.sdk_policy import SdkPolicy
from tidings.core.models import App
from tidings.store import ops_accounts, ops_sdk, ops_terms
from tidings.store.engine import Engine


class AccountStore:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    # developers
    async def create_developer(self, dev: Developer) -> bool:
        return await self.engine.write(ops_accounts.create_developer, dev)

    async def developer(self, developer_id: str) -> Developer | None:
        return await self.engine.read(ops_accounts.developer_by_id, developer_id)

    async def developer_by_email(self, email: str) -> Developer | None:
        return await self.engine.read(ops_accounts.developer_by_email, email)

    async def developers(self, state: str | None = None) -> list[Developer]:
        return await self.engine.read(ops_accounts.list_developers, state)

    async def transition(self, t: Transition, allowed_from: list[str]) -> Developer | None:
        return await self.engine.write(ops_accounts.transition, t, allowed_from)

    async def transitions(self, developer_id: str) -> list[Transition]:
        return await self.engine.read(ops_accounts.transitions, developer_id)

    # credentials
    async def add_credential(self, cred: Credential) -> None:
        await self.engine.write(ops_accounts.add_credential, cred)

    async def holder_of(self, token_hash: str, kind: str) -> Developer | None:
        return await self.engine.read(ops_accounts.holder_of, token_hash, kind, self.clock.now_ms())

    async def credentials(self, developer_id: str, kind: str) -> list[Credential]:
        return await self.engine.read(ops_accounts.credentials_of, developer_id, kind)

    async def revoke_credential(self, developer_id: str, token_id: str, kind: str) -> bool:
        return await self.engine.write(
            ops_accounts.revoke_credential, developer_id, token_id, kind, self.clock.now_ms()
        )

    async def revoke_by_hash(self, token_hash: str) -> bool:
        return await self.engine.write(ops_accounts.revoke_by_hash, token_hash, self.clock.now_ms())

    # apps
    async def create_owned_app(self, app: App, developer_id: str) -> bool:
        return await self.engine.write(ops_accounts.create_owned_app, app, developer_id)

    async def owned_app(self, developer_id: str | None, app_id: str) -> App | None:
        return await self.engine.read(ops_accounts.owned_app, developer_id, app_id)

    async def app_owner(self, app_id: str) -> str | None:
        return await self.engine.read(ops_accounts.app_owner, app_id)

    async def apps_of(self, developer_id: str | None) -> list[tuple[App, str | None]]:
        return await self.engine.read(ops_accounts.apps_of, developer_id)

    async def rotate_app_secrets(
        self, developer_id: str | None, app_id: str, key_hash: str, secret_hash: str
    ) -> bool:
        return await self.engine.write(
            ops_accounts.rotate_app_secrets, developer_id, app_id, key_hash, secret_hash
        )

    async def delete_app(self, developer_id: str | None, app_id: str) -> list[str]:
        return await self.engine.write(ops_accounts.delete_app, developer_id, app_id)

    async def app_standing(
        self, app_id: str, grace_ms: int, secret_hash: str | None = None
    ) -> tuple[str, str] | None:
        """Why the app may not be used now (secret changed, developer blocked, terms), or None."""
        return await self.engine.read_now(  # on every sender API request: no thread hop
            ops_accounts.app_standing, app_id, self.clock.now_ms(), grace_ms, secret_hash
        )

    # terms
    async def publish_terms(self, terms: TermsVersion) -> bool:
        return await self.engine.write(ops_terms.publish, terms)

    async def terms_versions(self) -> list[TermsVersion]:
        return await self.engine.read(ops_terms.versions)

    async def terms_version(self, version: str) -> TermsVersion | None:
        return await self.engine.read(ops_terms.version, version)

    async def terms_in_force(self) -> TermsVersion | None:
        return await self.engine.read(ops_terms.in_force, self.clock.now_ms())

    async def accept_terms(self, acceptance: Acceptance) -> bool:
        return await self.engine.write(ops_terms.accept, acceptance)

    async def acceptances(self, developer_id: str | None) -> list[Acceptance]:
        return await self.engine.read(ops_terms.acceptances, developer_id)

    # SDK version policy
    async def set_sdk_policy(self, policy: SdkPolicy) -> None:
        await self.engine.write(ops_sdk.set_policy, policy)

    async def sdk_policies(self) -> list[SdkPolicy]:
        return await self.engine.read(ops_sdk.policies)

    async def sdk_policy(self, sdk_name: str) -> SdkPolicy | None:
        return await self.engine.read(ops_sdk.policy, sdk_name)

    # misuse signals
    async def record_misuse(self, app_id: str, kind: str, detail: str) -> None:
        await self.engine.write(ops_sdk.record_misuse, app_id, kind, detail, self.clock.now_ms())

    async def misuse_signals(
        self, app_id: str | None = None, limit: int = 100
    ) -> list[dict[str, object]]:
        return await self.engine.read(ops_sdk.misuse_signals, app_id, limit)

    # audit
    async def audit(
        self,
        actor: str,
        developer_id: str | None,
        action: str,
        target: str = "",
        source: str = "",
        outcome: str = "ok",
        detail: str = "",
    ) -> None:
        await self.engine.write(
            ops_accounts.audit,
            self.clock.now_ms(),
            actor,
            developer_id,
            action,
            target,
            source,
            outcome,
            detail,
        )

    async def audit_entries(
        self,
        developer_id: str | None,
        since: int = 0,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        return await self.engine.read(
            ops_accounts.audit_entries, developer_id, since, action, limit
        )

"""Developer accounts: sign-up, login, API tokens, and the apps a developer owns.

``AccountService`` is the one core the management API and the CLI both call. Passwords are
hashed with argon2 (argon2-cffi); API tokens and session tokens are random and stored as SHA-256
digests, shown once. Every sign-in and every change is written to the audit log.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError

from tidings import ids
from tidings.compliance.account_models import AccountState, Credential, Developer, Role
from tidings.compliance.regions import DEFAULT_REGION, RegionTable
from tidings.core.models import App, NewApp
from tidings.errors import ManagementError
from tidings.store.store import Store

if TYPE_CHECKING:
    from tidings.residency import Residency

API_TOKEN_PREFIX = "tdk_"
SESSION_PREFIX = "tds_"
BOOTSTRAP_EMAIL = "bootstrap@tidings.invalid"
MIN_PASSWORD = 10
MAX_PASSWORD = 256
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+\Z")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def check_password(password: object) -> str:
    if not isinstance(password, str) or not password:
        raise ManagementError(400, "password_missing", "a password is required")
    if len(password) < MIN_PASSWORD or len(set(password)) < 5 or len(password) > MAX_PASSWORD:
        raise ManagementError(
            400,
            "weak_password",
            f"passwords need {MIN_PASSWORD}..{MAX_PASSWORD} characters, at least 5 different",
        )
    return password


def check_email(email: object) -> str:
    if not isinstance(email, str) or len(email) > 254 or not _EMAIL.match(email):
        raise ManagementError(400, "invalid_email", "email must look like name@example.com")
    return email.strip().lower()


def check_region(code: object, table: RegionTable) -> str:
    region = table.get(code) if isinstance(code, str) else None
    if region is None:
        known = ", ".join(sorted(table.by_code))
        raise ManagementError(400, "unknown_region", f"region must be one of {known}")
    if not region.served:
        raise ManagementError(
            400, "region_not_served", f"region {region.code} is not served by this deployment"
        )
    return region.code


def check_text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ManagementError(400, "invalid_field", f"{field} must be 1..{limit} characters")
    return value.strip()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (Argon2Error, InvalidHashError):
        return False


class AccountService:
    """Accounts and apps. With a ``residency``, apps are registered in the control store and
    given a row in their region's store, and deleting one deletes its data there too; without,
    ``store`` holds everything (one-store tools and tests)."""

    def __init__(
        self,
        store: Store,
        session_ttl_s: int = 604_800,
        residency: Residency | None = None,
        regions: RegionTable | None = None,
    ) -> None:
        self.store = store
        self.accounts = store.accounts
        self.session_ttl_s = session_ttl_s
        self.residency = residency
        self.regions = regions or (residency.table if residency else RegionTable())

    def now(self) -> int:
        return self.store.clock.now_ms()

    # sign-up and sign-in
    async def sign_up(
        self,
        email: object,
        password: object,
        legal_name: object,
        region: object,
        source: str = "",
        role: Role = Role.DEVELOPER,
        actor: str = "self",
    ) -> Developer:
        mail = check_email(email)
        secret = check_password(password)
        name = check_text(legal_name, "legal_name", 256)
        code = check_region(region, self.regions)
        now = self.now()
        dev = Developer(
            developer_id="dev_" + secrets.token_hex(8),
            email=mail,
            password_hash=await asyncio.to_thread(_hasher.hash, secret),
            legal_name=name,
            region=code,
            role=role.value,
            state=AccountState.ACTIVE.value,
            state_reason="",
            state_since=now,
            deadline=None,
            created_at=now,
        )
        if not await self.accounts.create_developer(dev):
            await self.accounts.audit(actor, None, "sign_up", mail, source, "refused")
            raise ManagementError(
                409, "email_taken", "an account with this email exists", audited=True
            )
        await self.accounts.audit(actor, dev.developer_id, "sign_up", mail, source)
        return dev

    async def login(
        self, email: object, password: object, source: str = ""
    ) -> tuple[Developer, str]:
        """Check a password; return the developer and a new session token (shown once)."""
        mail = email.strip().lower() if isinstance(email, str) else ""
        dev = await self.accounts.developer_by_email(mail) if mail else None
        given = password if isinstance(password, str) else ""
        ok = await asyncio.to_thread(_verify, dev.password_hash if dev else _DUMMY_HASH, given)
        if dev is None or not ok or dev.blocked_at(self.now()):
            who = dev.developer_id if dev else None
            why = f"account {dev.state}" if dev and ok else "bad email or password"
            await self.accounts.audit(
                f"login:{mail[:254]}", who, "sign_in", mail, source, "failed", why
            )
            if dev is not None and ok:
                raise ManagementError(403, "account_blocked", f"the account is {dev.state}")
            raise ManagementError(401, "bad_credentials", "wrong email or password")
        _, token = await self._issue(
            dev, "session", "login", self.now() + self.session_ttl_s * 1000
        )
        await self.accounts.audit(actor_of(dev), dev.developer_id, "sign_in", mail, source)
        return dev, token

    async def logout(self, session_token: str, dev: Developer, source: str = "") -> None:
        await self.accounts.revoke_by_hash(ids.secret_hash(session_token))
        await self.accounts.audit(actor_of(dev), dev.developer_id, "sign_out", "", source)

    async def _issue(
        self, dev: Developer, kind: str, name: str, expires_at: int | None
    ) -> tuple[Credential, str]:
        clear = (API_TOKEN_PREFIX if kind == "api" else SESSION_PREFIX) + secrets.token_urlsafe(32)
        cred = Credential(
            token_id="tok_" + secrets.token_hex(8),
            token_hash=ids.secret_hash(clear),
            developer_id=dev.developer_id,
            kind=kind,
            name=name,
            created_at=self.now(),
            expires_at=expires_at,
            revoked_at=None,
        )
        await self.accounts.add_credential(cred)
        return cred, clear

    async def holder(self, clear: str, kind: str) -> Developer | None:
        """The active developer a live credential belongs to, or None."""
        dev = await self.accounts.holder_of(ids.secret_hash(clear), kind)
        return None if dev is None or dev.blocked_at(self.now()) else dev

    # API tokens
    async def create_token(
        self, dev: Developer, name: object, source: str = "", expires_in_days: object = None
    ) -> tuple[Credential, str]:
        label = check_text(name, "name", 128)
        expires_at = None
        if expires_in_days is not None:
            if not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= 3650:
                raise ManagementError(400, "invalid_field", "expires_in_days must be 1..3650")
            expires_at = self.now() + expires_in_days * 86_400_000
        cred, clear = await self._issue(dev, "api", label, expires_at)
        await self.accounts.audit(
            actor_of(dev), dev.developer_id, "token_create", cred.token_id, source
        )
        return cred, clear

    async def revoke_token(self, dev: Developer, token_id: str, source: str = "") -> None:
        if not await self.accounts.revoke_credential(dev.developer_id, token_id, "api"):
            raise not_found("token")
        await self.accounts.audit(actor_of(dev), dev.developer_id, "token_revoke", token_id, source)

    # apps
    async def create_app(
        self,
        dev: Developer,
        name: object,
        package: object,
        privacy_policy_version: object = None,
        source: str = "",
    ) -> NewApp:
        from tidings.api.package_names import valid_package

        if dev.role == Role.OPERATOR:  # no terms to accept, no account state to enforce
            raise ManagementError(403, "forbidden", "apps belong to developer accounts")
        label = check_text(name, "name", 128)
        if not isinstance(package, str) or not valid_package(package):
            raise ManagementError(400, "invalid_package", "package must look like com.example.app")
        if privacy_policy_version is not None:
            privacy_policy_version = check_text(
                privacy_policy_version, "privacy_policy_version", 64
            )
        region = dev.region or DEFAULT_REGION  # operators from admin_token have none
        new = NewApp.generate(label, package, privacy_policy_version, self.now(), region)
        app = new.app
        if not await self._register(app, dev.developer_id):
            await self.accounts.audit(
                actor_of(dev), dev.developer_id, "app_create", package, source, "refused"
            )
            raise ManagementError(
                409, "package_taken", f"an app with package {package} exists", audited=True
            )
        await self.accounts.audit(actor_of(dev), dev.developer_id, "app_create", app.app_id, source)
        return new

    async def _register(self, app: App, developer_id: str) -> bool:
        """Register the app (``RegionNotServed`` when its region is not on this node)."""
        if self.residency is None:
            return await self.accounts.create_owned_app(app, developer_id)
        return await self.residency.create_app(app, developer_id)

    async def delete_owned_app(self, developer_id: str | None, app_id: str) -> list[str]:
        """Delete an app and its data (in its region's store); the regIds that went."""
        if self.residency is None:
            return await self.accounts.delete_app(developer_id, app_id)
        return await self.residency.delete_app(developer_id, app_id)

    async def app(self, dev: Developer, app_id: str) -> App:
        app = await self.accounts.owned_app(scope(dev), app_id)
        if app is None:
            raise not_found("app")
        return app

    async def rotate_secrets(
        self, dev: Developer, app_id: str, source: str = ""
    ) -> tuple[NewApp, str | None]:
        """New secrets for the app; with its owner (whose audit trail records it, also when an
        operator does it)."""
        app = await self.app(dev, app_id)
        owner = await self.accounts.app_owner(app_id)
        key, secret = ids.app_key(), ids.app_secret()
        if not await self.accounts.rotate_app_secrets(
            scope(dev), app_id, ids.secret_hash(key), ids.secret_hash(secret)
        ):
            raise not_found("app")
        await self.accounts.audit(
            actor_of(dev), owner or dev.developer_id, "app_rotate_secrets", app_id, source
        )
        return NewApp(app, key, secret), owner

    async def delete_app(self, dev: Developer, app_id: str, source: str = "") -> list[str]:
        await self.app(dev, app_id)
        owner = await self.accounts.app_owner(app_id)
        reg_ids = await self.delete_owned_app(scope(dev), app_id)
        await self.accounts.audit(
            actor_of(dev), owner or dev.developer_id, "app_delete", app_id, source
        )
        return reg_ids

    async def bootstrap_developer(self) -> Developer:
        """The developer that owns apps made with ``tidings app create`` (created on first use)."""
        dev = await self.accounts.developer_by_email(BOOTSTRAP_EMAIL)
        if dev is not None:
            return dev
        now = self.now()
        dev = Developer(
            developer_id="dev_bootstrap",
            email=BOOTSTRAP_EMAIL,
            password_hash="!",  # no password: nobody signs in as it
            legal_name="Bootstrap developer",
            region="ROW",
            role=Role.DEVELOPER.value,
            state=AccountState.ACTIVE.value,
            state_reason="",
            state_since=now,
            deadline=None,
            created_at=now,
        )
        if await self.accounts.create_developer(dev):
            await self.accounts.audit("cli", dev.developer_id, "sign_up", BOOTSTRAP_EMAIL, "cli")
        found = await self.accounts.developer_by_email(BOOTSTRAP_EMAIL)
        assert found is not None
        return found


def actor_of(dev: Developer) -> str:
    return f"{dev.role}:{dev.developer_id}"


def scope(dev: Developer) -> str | None:
    """Whose resources ``dev`` may touch: their own, or everyone's (None) for operators."""
    return None if dev.role == Role.OPERATOR else dev.developer_id


def not_found(what: str) -> ManagementError:
    """Unknown and foreign resources get this same answer: existence is never revealed."""
    return ManagementError(404, "not_found", f"no such {what}")

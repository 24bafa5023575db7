"""Developer account states and the transitions between them.

::

    active ──notify──▶ notified ──suspend (after the cure deadline)──▶ suspended
    suspended ──terminate (breach)──▶ terminated
    any but terminated ──terminate material──▶ terminated    (material breach: at once)
    active, notified ──suspend material──▶ suspended
    active, notified, suspended ──terminate without_cause──▶ terminating
    terminating ──(notice period over)──▶ terminated
    notified, suspended, terminating ──reinstate──▶ active

Every transition is a conditional update (two operators cannot both move one account from the
same state), carries a reason and an actor, is recorded in ``account_transitions`` and the audit
log. Suspended and terminated developers' AppSecrets get 10031, their AppKeys are refused at device
registration, their API tokens and sessions are revoked.
"""

from __future__ import annotations

import secrets

from tidings.compliance.account_models import AccountState, Developer, Transition
from tidings.compliance.accounts import AccountService, not_found
from tidings.errors import ManagementError, RegionNotServed
from tidings.store.store import Store

DAY_MS = 86_400_000
S = AccountState


class AccountStates:
    def __init__(
        self,
        store: Store,
        cure_days: float = 10.0,
        notice_days: float = 30.0,
        apps: AccountService | None = None,
    ) -> None:
        self.store = store
        self.accounts = store.accounts
        self.apps = apps or AccountService(store)  # deletes apps with their regional data
        self.cure_ms = int(cure_days * DAY_MS)
        self.notice_ms = int(notice_days * DAY_MS)

    async def _move(
        self,
        developer_id: str,
        to: AccountState,
        allowed: list[AccountState],
        reason: object,
        actor: str,
        source: str,
        deadline: int | None = None,
        action: str = "",
    ) -> Developer:
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
            raise ManagementError(
                400, "invalid_field", "a reason of 1..1000 characters is required"
            )
        dev = await self.accounts.developer(developer_id)
        if dev is None:
            raise not_found("developer")
        if dev.state not in allowed:
            await self.accounts.audit(actor, developer_id, action, developer_id, source, "refused")
            raise ManagementError(
                409,
                "transition_not_allowed",
                f"cannot {action} a developer who is {dev.state}",
                audited=True,
            )
        t = Transition(
            transition_id="tr_" + secrets.token_hex(8),
            developer_id=developer_id,
            from_state=dev.state,
            to_state=to.value,
            reason=reason.strip(),
            actor=actor,
            at=self.store.clock.now_ms(),
            deadline=deadline,
        )
        moved = await self.accounts.transition(t, [s.value for s in allowed])
        if moved is None:  # changed under us: report what it is now
            raise ManagementError(409, "transition_not_allowed", "the account state just changed")
        await self.accounts.audit(
            actor, developer_id, action, developer_id, source, "ok", f"{dev.state} -> {to.value}"
        )
        return moved

    async def notify(
        self,
        developer_id: str,
        reason: object,
        actor: str,
        source: str = "",
        cure_days: float | None = None,
    ) -> Developer:
        """A breach notice: the developer has until the cure deadline to fix it."""
        cure = self.cure_ms if cure_days is None else int(cure_days * DAY_MS)
        deadline = self.store.clock.now_ms() + cure
        return await self._move(
            developer_id, S.NOTIFIED, [S.ACTIVE], reason, actor, source, deadline, "notify"
        )

    async def suspend(
        self,
        developer_id: str,
        reason: object,
        actor: str,
        source: str = "",
        material: bool = False,
    ) -> Developer:
        """Suspend after an uncured notice, or at once for a material breach."""
        dev = await self.accounts.developer(developer_id)
        if dev is None:
            raise not_found("developer")
        now = self.store.clock.now_ms()
        if (
            not material
            and dev.state == S.NOTIFIED
            and dev.deadline is not None
            and now < dev.deadline
        ):
            raise ManagementError(
                409, "cure_period_running", "the cure deadline has not passed (or use material)"
            )
        # as the operator guide draws it; a terminating account in breach is terminated at once
        allowed = [S.ACTIVE, S.NOTIFIED] if material else [S.NOTIFIED]
        return await self._move(
            developer_id, S.SUSPENDED, allowed, reason, actor, source, None, "suspend"
        )

    async def reinstate(
        self, developer_id: str, reason: object, actor: str, source: str = ""
    ) -> Developer:
        return await self._move(
            developer_id,
            S.ACTIVE,
            [S.NOTIFIED, S.SUSPENDED, S.TERMINATING],
            reason,
            actor,
            source,
            None,
            "reinstate",
        )

    async def terminate(
        self,
        developer_id: str,
        reason: object,
        actor: str,
        source: str = "",
        cause: str = "breach",
    ) -> Developer:
        """``breach`` (after suspension), ``material`` (at once) or ``without_cause`` (notice)."""
        if cause == "without_cause":
            deadline = self.store.clock.now_ms() + self.notice_ms
            return await self._move(
                developer_id,
                S.TERMINATING,
                [S.ACTIVE, S.NOTIFIED, S.SUSPENDED],
                reason,
                actor,
                source,
                deadline,
                "terminate_without_cause",
            )
        if cause == "material":
            allowed = [S.ACTIVE, S.NOTIFIED, S.SUSPENDED, S.TERMINATING]
        elif cause == "breach":
            allowed = [S.SUSPENDED]
        else:
            raise ManagementError(
                400, "invalid_field", "cause must be breach, material or without_cause"
            )
        return await self._move(
            developer_id, S.TERMINATED, allowed, reason, actor, source, None, "terminate"
        )

    async def finish_due_terminations(self) -> list[str]:
        """Terminate every account whose termination notice has run out; returns their ids."""
        now = self.store.clock.now_ms()
        done = []
        for dev in await self.accounts.developers(S.TERMINATING.value):
            if dev.deadline is not None and dev.deadline <= now:
                try:
                    await self._move(
                        dev.developer_id,
                        S.TERMINATED,
                        [S.TERMINATING],
                        "termination notice period over",
                        "system",
                        "",
                        None,
                        "terminate",
                    )
                    done.append(dev.developer_id)
                except ManagementError:
                    continue  # reinstated or moved meanwhile
        return done

    async def erase_terminated(self, retention_days: float) -> list[str]:
        """Delete the apps of developers terminated over ``retention_days`` ago; returns regIds.

        Apps go with their devices, messages and settings; the account row, its transitions,
        acceptances and the audit log stay as records.
        """
        now = self.store.clock.now_ms()
        cutoff = now - int(retention_days * DAY_MS)
        erased: list[str] = []
        for dev in await self.accounts.developers(S.TERMINATED.value):
            if dev.state_since > cutoff:
                continue
            for app, _ in await self.accounts.apps_of(dev.developer_id):
                try:
                    erased += await self.apps.delete_owned_app(dev.developer_id, app.app_id)
                except RegionNotServed:
                    continue  # the app's region is not served here: its nodes erase it
                await self.accounts.audit(
                    "system", dev.developer_id, "retention_erase", app.app_id, "", "ok",
                    f"terminated {retention_days:g} days ago",
                )  # fmt: skip
        return erased

"""The one exception root of Tidings and its tree.

::

    TidingsError
    ├── ConfigError            bad settings or command-line values
    ├── StoreError             the storage engine failed
    │   ├── StoreUnavailable   the database cannot be reached right now (answer 503 / 10002)
    │   └── StoreRefused       the database cannot hold a value (text with U+0000 on PostgreSQL)
    ├── ApiError               a request was refused; carries a Mi Push error code and a reason
    ├── ComplianceError        a consent, erasure or review operation was refused (unknown id...)
    ├── RegionNotServed        the data asked for lives in a region this node does not serve
    ├── ManagementError        a management operation was refused; carries an HTTP status and a
    │                          stable code (sign-up, login, tokens, apps, terms, account states)
    └── PushRefused            a Web Push request was refused; carries an HTTP status and an errno

Foreign exceptions (sqlite3, psycopg, websockets) are converted at the boundary of the module
that calls them; nothing above the store sees a driver exception.
"""

from __future__ import annotations


class TidingsError(Exception):
    """Root of every error Tidings raises on purpose."""


class ConfigError(TidingsError):
    """A setting or a command-line value is invalid."""


class StoreError(TidingsError):
    """The storage engine failed."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now; the caller may retry later."""


class StoreRefused(StoreError):
    """The database refused a value it cannot hold; the same request will fail again. The
    surfaces refuse such values first (U+0000 in text); this is the store's own guard."""


class ApiError(TidingsError):
    """A request refused with a Mi Push error code (see tidings.api.codes)."""

    def __init__(self, code: int, reason: str, data: dict[str, object] | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.data = data


class ComplianceError(TidingsError):
    """A consent, data-subject or review operation was refused (unknown app, device, message)."""


class RegionNotServed(TidingsError):
    """The app (and so its data) belongs to a region this node does not serve."""

    def __init__(self, region: str, served: list[str]) -> None:
        super().__init__(
            f"region {region} is not served by this node (it serves {', '.join(served) or 'none'})"
        )
        self.region = region
        self.reason = str(self)


class ManagementError(TidingsError):
    """A management operation refused with a stable code (``{"error": {"code", "message"}}``)."""

    def __init__(self, status: int, code: str, message: str, audited: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.audited = audited  # the refusal is in the audit trail already (by the service)


class PushRefused(TidingsError):
    """A Web Push request (RFC 8030) refused: the HTTP status, Mozilla's push service ``errno``
    and a reason (``{"code", "errno", "error", "message"}``)."""

    def __init__(self, status: int, errno: int, message: str) -> None:
        super().__init__(f"{status} ({errno}): {message}")
        self.status = status
        self.errno = errno
        self.message = message

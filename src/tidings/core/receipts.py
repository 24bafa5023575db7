"""Delivery receipts: POST queued receipt events to each message's ``extra.callback``.

Every ``interval_s`` the sender reads the due receipts, groups them per (app, URL, event type) and
POSTs each group as Mi Push does: a form field ``data`` holding ``{msgId: {param, type, targets,
jobkey, timestamp}}``. Each POST is signed with the app's receipt key by the Standard Webhooks
scheme (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">``). A 2xx answer deletes the receipts; anything else (an error, a redirect,
a timeout) retries later with backoff, and after ``max_attempts`` they are dropped.

SSRF protection: the host is resolved when sending, every address it has must be public (not
loopback, private, link-local, multicast, reserved or unspecified), the connection goes to the
address that was checked (so a second DNS answer cannot rebind it) and redirects are not
followed. ``allow_private`` lifts the address rule for tests.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import urllib.parse
from collections.abc import Sequence
from typing import Any

import httpx

from tidings.core.models import Receipt
from tidings.errors import TidingsError
from tidings.store.store import Store

log = logging.getLogger("tidings.receipts")

MAX_BACKOFF_MS = 300_000


class UnsafeTarget(Exception):
    """The callback URL resolves to an address receipts may not be sent to."""


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value for a body (Standard Webhooks, version 1)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def batches(receipts: Sequence[Receipt]) -> list[tuple[tuple[str, str, int], list[Receipt]]]:
    """Receipts grouped per (app, URL, type): one POST each, keyed by message id. Events with
    different ``extra`` objects (type 128: each device's count) go in separate POSTs."""
    groups: dict[tuple[str, str, int, str], list[Receipt]] = collections.defaultdict(list)
    for r in receipts:
        groups[(r.app_id, r.url, r.type, r.extra or "")].append(r)
    return [((app, url, kind), group) for (app, url, kind, _), group in groups.items()]


def payload(group: Sequence[Receipt]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for r in group:
        entry = data.get(r.msg_id)
        if entry is None:
            entry = data[r.msg_id] = {"type": r.type, "targets": r.targets, "timestamp": r.at}
            if r.param is not None:
                entry["param"] = r.param
            if r.jobkey is not None:
                entry["jobkey"] = r.jobkey
            if r.extra:
                entry["extra"] = json.loads(r.extra)
        else:  # several events of one type for one message: one entry, all targets
            entry["targets"] += "," + r.targets
            entry["timestamp"] = max(entry["timestamp"], r.at)
    return data


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the well-known NAT64 prefix
_COMPAT = ipaddress.ip_network("::/96")  # IPv4-compatible (deprecated, still routed by some)


def _public(address: str) -> bool:
    """A global unicast address, and so is any IPv4 address it carries (mapped, compatible,
    NAT64, 6to4): each of those can lead to a private or loopback IPv4 host."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and (ip in _NAT64 or ip in _COMPAT) and int(ip) > 1:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not _public(str(embedded)):
            return False
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int, allow_private: bool) -> str:
    """One address of ``host`` to connect to; every address must be public unless allowed."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a label empty or over 63 characters
        raise UnsafeTarget(f"cannot resolve {host}: {exc}") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeTarget(f"{host} has no address")
    if not allow_private:
        bad = [a for a in addresses if not _public(a)]
        if bad:
            raise UnsafeTarget(f"{host} resolves to a non-public address {bad[0]}")
    return addresses[0]


def host_header(parts: urllib.parse.SplitResult) -> str:
    """The ``Host`` header of a callback URL: its name as DNS has it (IDNA, so ASCII), and the
    port when the URL gives one."""
    host = parts.hostname or ""
    name = f"[{host}]" if ":" in host else host.encode("idna").decode("ascii")
    return name if parts.port is None else f"{name}:{parts.port}"


class ReceiptSender:
    def __init__(
        self,
        store: Store,
        interval_s: float = 1.0,
        timeout_s: float = 5.0,
        max_attempts: int = 8,
        allow_private: bool = False,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self.sent = 0
        self.failed = 0
        self._http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.send_due()
            except TidingsError as exc:
                log.warning("receipt pass failed: %s", exc)

    async def send_due(self) -> int:
        """POST every due receipt once; return how many were delivered."""
        lease_ms = int(self.timeout_s * 1000) * 4 + 10_000  # longer than one pass can take
        due = await self.store.claim_receipts(500, lease_ms)
        delivered = 0
        for (app_id, url, _kind), group in batches(due):
            receipt_ids = [r.receipt_id for r in group]
            if await self._post(app_id, url, group):
                await self.store.receipts_sent(receipt_ids)
                delivered += len(group)
                self.sent += len(group)
            else:
                self.failed += len(group)
                attempts = min(r.attempts for r in group)
                retry_in = min(MAX_BACKOFF_MS, 1000 * 2**attempts)
                dropped = await self.store.receipts_failed(receipt_ids, retry_in, self.max_attempts)
                if dropped:
                    host = urllib.parse.urlsplit(url).hostname
                    log.warning("dropped %d receipts for host %s after retries", dropped, host)
        return delivered

    async def _post(self, app_id: str, url: str, group: Sequence[Receipt]) -> bool:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = await resolve(host, port, self.allow_private)
        except UnsafeTarget as exc:
            log.warning("receipt callback refused: %s", exc)
            return False
        shown = f"[{address}]" if ":" in address else address
        target = urllib.parse.urlunsplit(
            (parts.scheme, f"{shown}:{port}", parts.path or "/", parts.query, "")
        )
        body = urllib.parse.urlencode({"data": json.dumps(payload(group), ensure_ascii=False)})
        # the same receipts sent again are the same webhook message (Standard Webhooks: the id
        # stays across retries, so receivers can drop repeats): the id comes from their ids
        receipt_ids = ",".join(sorted(r.receipt_id for r in group)).encode()
        webhook_id = "msg_" + hashlib.sha256(receipt_ids).hexdigest()[:32]
        timestamp = int(self.store.clock.now_ms() // 1000)
        secret = await self.store.receipt_key(app_id)
        headers = {
            "Host": host_header(parts),
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, webhook_id, timestamp, body),
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            response = await self._http.post(
                target, content=body.encode(), headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            log.info("receipt POST to host %s failed: %s", host, type(exc).__name__)
            return False
        return 200 <= response.status_code < 300

"""The sender SDK: call the Mi Push-compatible API from an app server (used by ``tidings send``).

Mi Push's own server SDKs work too; this one is small, typed and async-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tidings.errors import TidingsError

TARGET_PATHS = {
    "regid": ("/v3/message/regid", "registration_id"),
    "alias": ("/v3/message/alias", "alias"),
    "account": ("/v2/message/user_account", "user_account"),
    "topic": ("/v3/message/topic", "topic"),
    "all": ("/v3/message/all", None),
}


class SendError(TidingsError):
    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(f"{response.get('code')}: {response.get('reason', '')}")
        self.response = response
        self.code = int(response.get("code", -1))


class UnexpectedResponse(TidingsError):
    """The URL answered, but not with a sender API envelope (not Tidings, or a proxy's error
    page while Tidings is down)."""


class SenderClient:
    def __init__(self, api_url: str, app_secret: str, package: str, timeout: float = 10.0):
        self.package = package
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"key={app_secret}"},
        )

    def close(self) -> None:
        self._http.close()

    def call(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """POST form parameters to ``path``; return the JSON envelope, raise on a non-zero code."""
        response = self._http.post(path, data={k: str(v) for k, v in params.items()})
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise UnexpectedResponse(
                f"{response.url} answered HTTP {response.status_code} without a sender API envelope"
            )
        if body.get("code") != 0:
            raise SendError(body)
        return body

    def send(
        self,
        target: str,
        to: Sequence[str] | str | None = None,
        *,
        title: str = "",
        description: str = "",
        payload: str = "",
        pass_through: int = 0,
        time_to_live: int | None = None,
        notify_id: int | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one message to ``target`` in regid / alias / account / topic / all."""
        path, name = TARGET_PATHS[target]
        params: dict[str, Any] = {
            "restricted_package_name": self.package,
            "title": title,
            "description": description,
            "payload": payload,
            "pass_through": pass_through,
        }
        if name is not None:
            if to is None:
                raise ValueError(f"sending to {target} needs a target")
            params[name] = to if isinstance(to, str) else ",".join(to)
        if time_to_live is not None:
            params["time_to_live"] = time_to_live
        if notify_id is not None:
            params["notify_id"] = notify_id
        for key, value in (extra or {}).items():
            params[f"extra.{key}"] = value
        return self.call(path, params)

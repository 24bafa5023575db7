"""Python SDKs: the device client and the sender client."""

from tidings.client.device import (
    AppConfig,
    CommandResult,
    ConsentResult,
    DeviceClient,
    PushMessage,
    Revoke,
)
from tidings.client.sender import SenderClient, SendError

__all__ = [
    "AppConfig",
    "CommandResult",
    "ConsentResult",
    "DeviceClient",
    "PushMessage",
    "Revoke",
    "SendError",
    "SenderClient",
]

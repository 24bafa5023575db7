"""Tidings: a self-hosted push notification platform with a Mi Push-compatible sender API."""

__version__ = "0.1.0"

"""Fixtures for the TestClient tests: a guard that records every network connection tried."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest


class ConnectionAttempts(list[str]):
    """What tried to reach the network while the guard was on: each refused, and listed."""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> ConnectionAttempts:
    """Refuse every outgoing connection and name lookup at the socket level, recording each
    attempt; tests assert the list stays empty."""
    attempts = ConnectionAttempts()

    def refuse(what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args!r}")
            raise ConnectionRefusedError(f"network access in a test: {what}{args!r}")

        return refused

    async def refuse_async(*args: Any, **kwargs: Any) -> Any:
        attempts.append(f"getaddrinfo{args[1:]!r}")
        raise ConnectionRefusedError("network access in a test: getaddrinfo")

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", refuse_async)
    return attempts

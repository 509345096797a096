"""Fixtures for the NATS backends' integration tests (nats-server from tools/brokers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from brokers import NatsServer

# Pull requests wait half a second for messages, so that stopping takes no longer.
QUICK_PULLS: dict[str, Any] = {"block": 0.5}


@pytest.fixture
def jetstream_settings(nats_server: NatsServer) -> dict[str, Any]:
    """Settings of the backend `nats` (JetStream) on the session's server."""
    return {"url": nats_server.url, **QUICK_PULLS}


@pytest.fixture
def core_settings(nats_server: NatsServer) -> dict[str, Any]:
    """Settings of the backend `nats-core` on the session's server."""
    return {"url": nats_server.url}

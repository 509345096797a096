"""Fixtures for the NATS backends' integration tests (nats-server from tools/brokers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from brokers import NatsServer

# Redeliver what a killed listener left after two seconds, not thirty.
FAST_REDELIVERY: dict[str, Any] = {"ack_wait": 2.0, "block": 0.5}


@pytest.fixture
def jetstream_settings(nats_server: NatsServer) -> dict[str, Any]:
    """Settings of the backend `nats` (JetStream) on the session's server."""
    return {"url": nats_server.url, **FAST_REDELIVERY}


@pytest.fixture
def core_settings(nats_server: NatsServer) -> dict[str, Any]:
    """Settings of the backend `nats-core` on the session's server."""
    return {"url": nats_server.url}

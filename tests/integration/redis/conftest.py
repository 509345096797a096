"""Fixtures for the Redis backends' integration tests (redis-server from tools/brokers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from brokers import RedisServer

# Claim entries left pending by a stopped or dead consumer after one second, not thirty.
FAST_CLAIMS: dict[str, Any] = {"claim_idle": 1.0, "claim_interval": 0.2, "block": 0.2}


@pytest.fixture
def streams_settings(redis_server: RedisServer) -> dict[str, Any]:
    """Settings of the backend `redis` on the session's server, with quick claims."""
    return {"url": redis_server.url, **FAST_CLAIMS}


@pytest.fixture
def pubsub_settings(redis_server: RedisServer) -> dict[str, Any]:
    """Settings of the backend `redis-pubsub` on the session's server."""
    return {"url": redis_server.url}

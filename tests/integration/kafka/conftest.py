"""Fixtures for the Kafka backend's integration tests (a tansu broker from tools/brokers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from brokers import KafkaServer

# tansu finishes a group join after about half the session timeout; keep it short.
FAST_GROUPS: dict[str, Any] = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 300,
    "metadata_max_age_ms": 1000,
    "commit_interval": 0.1,
}


@pytest.fixture
def kafka_settings(kafka_server: KafkaServer) -> dict[str, Any]:
    """Backend settings for the session's broker, tuned for quick group joins."""
    return {"bootstrap_servers": kafka_server.bootstrap, **FAST_GROUPS}

"""Fixtures for the SQS backend's integration tests (moto's server from tools/brokers.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from brokers import SQSServer

# Quick settings for tests: short long polls and visibility timeouts, so that stopped or
# killed consumers' messages come back within seconds.
FAST: dict[str, Any] = {"wait_time": 1, "visibility_timeout": 5}

# Never ask the instance metadata service for credentials or a region.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def sqs_settings(sqs_server: SQSServer) -> dict[str, Any]:
    """Settings of the backend `sqs` on the session's moto server, with quick timeouts."""
    return {**sqs_server.settings, **FAST}

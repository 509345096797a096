"""Fixtures for the SQS backend's integration tests (moto's server from tools/brokers.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from brokers import SQSServer

# Short long polls, so that listeners stop quickly. Visibility timeouts keep their default:
# stopped consumers hand their messages back at once, and on a busy machine a short timeout
# could run out before moto extends it (a message would then be delivered twice).
FAST: dict[str, Any] = {"wait_time": 1}

# Never ask the instance metadata service for credentials or a region.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def sqs_settings(sqs_server: SQSServer) -> dict[str, Any]:
    """Settings of the backend `sqs` on the session's moto server, with quick timeouts."""
    return {**sqs_server.settings, **FAST}

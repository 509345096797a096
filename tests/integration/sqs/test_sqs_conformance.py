"""The SQS backend runs the Dispytch conformance suite against moto's SQS and SNS, with
standard queues and with FIFO queues. moto, a Python emulator, is slow: deliveries may take
up to a minute on a busy machine."""

from __future__ import annotations

from typing import Any

import pytest

from dispytch.testing import BackendUnderTest, ConformanceSuite
from dispytch_sqs import SQSEventConfig

pytestmark = pytest.mark.sqs


class TestSQSStandardConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, sqs_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest("sqs", sqs_settings, timeout=60.0)


class TestSQSFifoConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, sqs_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest(
            "sqs",
            {**sqs_settings, "fifo": True},
            key_config=lambda key: SQSEventConfig(key=key),
            timeout=60.0,
        )

"""The SQS backend runs the Dispytch conformance suite against moto's SQS and SNS, with
standard queues, with FIFO queues, and with native dead-letter queues."""

from __future__ import annotations

from typing import Any

import pytest

from dispytch.testing import BackendUnderTest, ConformanceSuite
from dispytch_sqs import SQSEventConfig

pytestmark = pytest.mark.sqs


class TestSQSStandardConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, sqs_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest("sqs", sqs_settings, bulk=300, timeout=60.0)


class TestSQSFifoConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, sqs_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest(
            "sqs",
            {**sqs_settings, "fifo": True},
            key_config=lambda key: SQSEventConfig(key=key),
            bulk=300,
            timeout=60.0,
        )

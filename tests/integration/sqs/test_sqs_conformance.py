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

    # The FIFO consumer hands out one message per key at a time, so that a nack hands the
    # key's later messages back with it and order holds; a batch of one key therefore never
    # holds more than one message and waits its max_wait each time.
    _ONE_PER_KEY = (
        "the SQS FIFO consumer hands out one message per key at a time, so a key's batch "
        "never holds more than one message"
    )

    @pytest.mark.asyncio
    async def test_batches_are_bounded_and_keep_order_per_key(self) -> None:
        pytest.skip(self._ONE_PER_KEY)

    @pytest.mark.asyncio
    async def test_failing_batch_dead_letters_each_message(self) -> None:
        pytest.skip(self._ONE_PER_KEY)

    @pytest.mark.asyncio
    async def test_partial_failure_retries_only_the_failed(self) -> None:
        pytest.skip(self._ONE_PER_KEY)

    @pytest.mark.asyncio
    async def test_unfinished_batch_is_not_acked(self) -> None:
        pytest.skip(self._ONE_PER_KEY)

"""The Kafka backend runs the Dispytch conformance suite against a real broker."""

from __future__ import annotations

from typing import Any

import pytest

from dispytch.testing import BackendUnderTest, ConformanceSuite
from dispytch_kafka import KafkaEventConfig

pytestmark = pytest.mark.kafka


class TestKafkaConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, kafka_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest(
            "kafka",
            kafka_settings,
            key_config=lambda key: KafkaEventConfig(partition_key=key),
        )

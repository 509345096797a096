"""The RabbitMQ backend runs the Dispytch conformance suite against a real node."""

from __future__ import annotations

import pytest

from brokers import RabbitMQServer
from dispytch.testing import BackendUnderTest, ConformanceSuite

pytestmark = pytest.mark.rabbitmq


class TestRabbitMQConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, rabbitmq_server: RabbitMQServer) -> BackendUnderTest:
        return BackendUnderTest("rabbitmq", {"url": rabbitmq_server.url})


class TestRabbitMQQuorumConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, rabbitmq_server: RabbitMQServer) -> BackendUnderTest:
        return BackendUnderTest("rabbitmq", {"url": rabbitmq_server.url, "quorum": True})

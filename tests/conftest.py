"""Shared pytest fixtures: real brokers on loopback, started on first use per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from brokers import KafkaServer, RabbitMQServer, RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server shared by the session; never restart it (make your own for that)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    """A RabbitMQ node shared by the session; never restart it (make your own for that)."""
    with RabbitMQServer() as server:
        yield server


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[KafkaServer]:
    """A Kafka-protocol broker (tansu) shared by the session; never restart it."""
    with KafkaServer() as server:
        yield server

"""Shared pytest fixtures: real brokers on loopback, started on first use per session."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokers import KafkaServer, NatsServer, RabbitMQServer, RedisServer, SQSServer
from dispytch.backends.registry import registry

SQLITE_PLUGIN = Path(__file__).parent / "plugins" / "dispytch-sqlite"


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


@pytest.fixture(scope="session")
def sqlite_plugin() -> Iterator[None]:
    """Install `dispytch-sqlite` (unless it is there) and make discovery see it."""
    try:
        importlib.metadata.version("dispytch-sqlite")
    except importlib.metadata.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", str(SQLITE_PLUGIN)],
            check=True,
        )
        importlib.invalidate_caches()
    registry.cache_clear()
    yield
    registry.cache_clear()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """A nats-server with JetStream shared by the session; never restart it."""
    with NatsServer() as server:
        yield server


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[SQSServer]:
    """moto's server (SQS and SNS) shared by the session; never restart it."""
    with SQSServer() as server:
        yield server

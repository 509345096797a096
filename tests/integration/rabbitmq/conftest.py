"""Fixtures for the RabbitMQ backend's integration tests (a node from tools/brokers.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from brokers import RabbitMQServer


@pytest.fixture
def rabbitmq_url(rabbitmq_server: RabbitMQServer) -> str:
    """URL of the session's node."""
    return rabbitmq_server.url


@pytest.fixture
def exchange_name() -> str:
    """A fresh exchange name, so that a test's topology (and dead-letter queue) is its own."""
    return f"test.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def amqp(rabbitmq_url: str) -> AsyncIterator[AbstractChannel]:
    """A plain aio-pika channel to the node, to set up or inspect what the backend cannot."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        yield await connection.channel()

"""`dispytch run --workers 3` on RabbitMQ: competing consumers of the group's queue."""

import uuid
from pathlib import Path

import pytest

from brokers import RabbitMQServer
from service_process import check_competing_workers

pytestmark = pytest.mark.rabbitmq


async def test_three_workers_compete_survive_a_kill_and_drain_on_sigterm(
    rabbitmq_server: RabbitMQServer, tmp_path: Path
) -> None:
    name = uuid.uuid4().hex[:10]
    url = f"{rabbitmq_server.url}?prefetch=10"
    print("\n" + await check_competing_workers(url, f"workers.{name}", f"g-{name}", tmp_path))

"""`dispytch run --workers 3` on Redis Streams: competing consumers of one group."""

from pathlib import Path

import pytest
from redis_helpers import fresh

from brokers import RedisServer, free_port
from service_process import check_competing_workers

pytestmark = pytest.mark.redis


async def test_three_workers_compete_survive_a_kill_and_drain_on_sigterm(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    url = f"{redis_server.url}?claim_idle=1&claim_interval=0.2&block=0.2&batch_size=10"
    measured = await check_competing_workers(
        url, fresh("workers"), fresh("group"), tmp_path, health_port=free_port()
    )
    print(f"\n{measured}")

"""`dispytch run --workers 2 --health-port P` with `Metrics` attached, on Redis Streams: one
scrape of the supervisor's `/metrics` counts the events every worker handled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis_helpers import fresh

from brokers import RedisServer, free_port
from service_process import (
    RECORDER_APP,
    ServiceProcess,
    emit_numbered,
    eventually,
    http_get,
    recorder_env,
    records,
    until_ready,
)

pytestmark = pytest.mark.redis

METERED_APP = (
    RECORDER_APP
    + """
from dispytch.prometheus import Metrics

app.add_instrumentation(Metrics())
"""
)
EVENTS = 200


def settled(exposition: str, outcome: str) -> float:
    """The sum of `dispytch_messages_settled_total` samples with `outcome`."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("dispytch_messages_settled_total{") and f'outcome="{outcome}"' in line
    )


async def test_one_scrape_counts_every_workers_events(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    url = f"{redis_server.url}?block=0.2&batch_size=5"
    topic, record, port = fresh("metered"), tmp_path / "records.txt", free_port()
    (tmp_path / "metered.py").write_text(METERED_APP)
    env = recorder_env(url, fresh("group"), topic, record, handler_delay=0.01)
    service = ServiceProcess(
        ["metered:app", "--workers", "2", "--health-port", str(port)], cwd=tmp_path, env=env
    )
    await service.start()
    try:
        await until_ready(port, "both workers are ready")
        await emit_numbered(url, topic, range(EVENTS))
        await eventually(lambda: len(records(record)) >= EVENTS, "every event was handled")
        workers = {pid for pid, *_ in records(record)}

        for _ in range(100):  # the last acks are counted just after their handlers ran
            status, exposition = await http_get(port, "/metrics")
            if settled(exposition, "ack") == EVENTS:
                break
            await asyncio.sleep(0.1)
    finally:
        service.terminate()
        await service.wait(30)
    assert len(workers) == 2, "both workers handled events"
    assert status == 200
    assert settled(exposition, "ack") == EVENTS, "the scrape sums both workers"

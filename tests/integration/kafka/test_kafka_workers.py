"""`dispytch run --workers 3` on a topic of three partitions: one partition per worker,
a SIGKILLed worker replaced without losing events, SIGTERM drains every worker."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from kafka_helpers import fresh

from brokers import KafkaServer
from dispytch_kafka import KafkaEventConfig
from service_process import (
    RECORDER_APP,
    Record,
    ServiceProcess,
    emit_numbered,
    eventually,
    recorder_env,
    records,
    worker_pids,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 3
STOP_TIMEOUT = 20.0
FAST_GROUPS = "session_timeout_ms=2000&heartbeat_interval_ms=300&metadata_max_age_ms=1000"


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def on_partition(seq: int) -> KafkaEventConfig:
    return KafkaEventConfig(partition=seq % PARTITIONS)


def owners(found: list[Record], seqs: set[int]) -> dict[int, set[int]]:
    """For the records of `seqs`: each worker pid and the partitions it handled."""
    by_pid: dict[int, set[int]] = defaultdict(set)
    for pid, partition, seq in found:
        if seq in seqs:
            by_pid[pid].add(int(partition))
    return dict(by_pid)


async def test_three_workers_own_a_partition_each_survive_a_kill_and_drain_on_sigterm(
    kafka_server: KafkaServer, tmp_path: Path
) -> None:
    bootstrap, topic = kafka_server.bootstrap, fresh("workers")
    url = f"kafka://{bootstrap}?{FAST_GROUPS}&commit_interval=0.1"
    await create_topic(bootstrap, topic, PARTITIONS)
    record = tmp_path / "records.txt"
    (tmp_path / "recorder.py").write_text(RECORDER_APP)
    env = recorder_env(url, fresh("group"), topic, record, handler_delay=0.005)
    args = ["recorder:app", "--workers", "3", "--stop-timeout", str(STOP_TIMEOUT)]
    service = ServiceProcess(args, cwd=tmp_path, env=env)
    seqs = itertools.count()
    emitted: set[int] = set()

    async def emit(count: int) -> set[int]:
        batch = {next(seqs) for _ in range(count)}
        await emit_numbered(url, topic, sorted(batch), on_partition)
        emitted.update(batch)
        return batch

    def handled(batch: set[int]) -> bool:
        return batch <= {seq for *_, seq in records(record)}

    async def balanced(new_worker: int | None = None) -> dict[int, set[int]]:
        """Emit a round per partition until three workers handle one partition each."""
        while True:
            batch = await emit(PARTITIONS)
            await eventually(lambda batch=batch: handled(batch), "a round was handled")
            found = owners(records(record), batch)
            if len(found) == PARTITIONS and (new_worker is None or new_worker in found):
                return found

    await service.start()
    try:
        await service.wait_for_log("listening on kafka", count=3)
        await eventually(lambda: len(worker_pids(service.pid)) == 3, "three workers run")
        await balanced()

        steady = await emit(30 * PARTITIONS)
        await eventually(lambda: handled(steady), "the steady batch was handled")
        ownership = owners(records(record), steady)
        assert len(ownership) == PARTITIONS, f"three workers shared the topic: {ownership}"
        assert all(len(parts) == 1 for parts in ownership.values()), ownership
        assert set().union(*ownership.values()) == set(range(PARTITIONS))

        victim = next(pid for pid, parts in ownership.items() if parts == {0})
        burst = await emit(200 * PARTITIONS)
        await eventually(
            lambda: sum(pid == victim for pid, *_ in records(record)) >= 30 + 20,
            "the victim is mid-burst",
        )
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        await eventually(
            lambda: len(set(worker_pids(service.pid)) - set(ownership)) == 1,
            "the supervisor started a replacement",
        )
        replacement = (set(worker_pids(service.pid)) - set(ownership)).pop()
        await eventually(lambda: handled(burst), "every event of the burst was handled")
        after = await balanced(new_worker=replacement)
        assert replacement in after, "the replacement consumes"
        replaced_in = time.monotonic() - killed_at

        service.terminate()
        terminated_at = time.monotonic()
        assert await service.wait(STOP_TIMEOUT + 10) == 0, service.output()
        print(
            f"\nreplacement consuming {replaced_in:.1f}s after SIGKILL; "
            f"drained and exited {time.monotonic() - terminated_at:.1f}s after SIGTERM; "
            f"{len(records(record)) - len(emitted)} events handled twice"
        )
    finally:
        service.kill_all()
    assert worker_pids(service.pid) == []
    assert {seq for *_, seq in records(record)} == emitted, "no event was lost"
    assert "restarting worker" in service.output()

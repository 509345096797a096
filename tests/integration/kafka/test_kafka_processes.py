"""Listener processes against a real broker: a crash mid-stream, and two processes in a group."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from kafka_helpers import ListenerProcess, committed_offsets, emit_numbered, eventually, fresh

from brokers import KafkaServer

pytestmark = pytest.mark.kafka

EVENTS = 10_000


async def test_sigkill_mid_stream_then_restart_loses_nothing(
    kafka_server: KafkaServer, tmp_path: Path
) -> None:
    bootstrap, topic, group = kafka_server.bootstrap, fresh("crash"), fresh("group")
    await emit_numbered(bootstrap, topic, range(EVENTS))

    # Handlers take a millisecond, so offsets get committed before the kill.
    first = ListenerProcess(bootstrap, topic, group, tmp_path / "first.txt", delay=0.001)
    await first.start()
    await eventually(lambda: len(first.records()) >= EVENTS // 4, "a quarter was handled")
    await first.kill()
    before_crash = first.records()
    committed = await committed_offsets(bootstrap, group, topic)
    assert sum(committed.values()) > 0, "offsets were committed while the first process ran"

    second = ListenerProcess(bootstrap, topic, group, tmp_path / "second.txt")
    await second.start()
    await eventually(
        lambda: {seq for *_, seq in before_crash + second.records()} >= set(range(EVENTS)),
        f"all {EVENTS} events were handled by one process or the other",
    )
    await second.stop()
    after_crash = second.records()

    assert len(before_crash) < EVENTS, "the first process was killed mid-stream"
    assert {seq for *_, seq in before_crash + after_crash} == set(range(EVENTS)), "none lost"
    for records in (before_crash, after_crash):
        assert max(Counter(records).values()) == 1, "no process handles an event twice"
    # Duplicates: exactly the handled-but-uncommitted tail of the killed process.
    tail = {(p, o) for p, o, _ in before_crash if o >= committed.get(p, 0)}
    duplicates = {(p, o) for p, o, _ in after_crash} & {(p, o) for p, o, _ in before_crash}
    assert duplicates == tail
    print(f"\n{len(before_crash)} handled before SIGKILL, {len(duplicates)} of them again after")
    # The restarted process resumed each partition exactly at the committed offset.
    for partition, offset in committed.items():
        resumed = [o for p, o, _ in after_crash if p == partition]
        if resumed:
            assert min(resumed) == offset


async def test_two_processes_in_a_group_split_the_partitions(
    kafka_server: KafkaServer, tmp_path: Path
) -> None:
    bootstrap, topic, group = kafka_server.bootstrap, fresh("split"), fresh("group")
    processes = [
        ListenerProcess(bootstrap, topic, group, tmp_path / f"listener-{i}.txt") for i in range(2)
    ]
    await asyncio.gather(*(p.start() for p in processes))
    await emit_numbered(bootstrap, topic, range(4000))
    await eventually(
        lambda: sum(len(p.records()) for p in processes) >= 4000, "4000 events were handled"
    )
    await asyncio.gather(*(p.stop() for p in processes))

    first, second = (p.records() for p in processes)
    assert sorted(seq for *_, seq in first + second) == list(range(4000)), "each event once"
    first_partitions, second_partitions = ({p for p, *_ in r} for r in (first, second))
    assert first_partitions, "the first process got partitions"
    assert second_partitions, "the second process got partitions"
    assert not first_partitions & second_partitions, "each partition went to one process"
    assert first_partitions | second_partitions == {0, 1, 2, 3}

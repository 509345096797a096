"""JetStream loses nothing when a listener process is killed (SIGKILL) mid-stream: what
it had pulled and not acked is delivered again, after `ack_wait` (5 s here), to the
listener of its group that comes after it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats_helpers import Numbered, eventually

from brokers import NatsServer
from dispytch import EventEmitter

pytestmark = pytest.mark.nats

SCRIPT = Path(__file__).with_name("nats_listener_process.py")
EVENTS = 3000


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def records(path: Path) -> list[tuple[int, int, int]]:
    """(number, attempt, stream sequence) of every event the process handled."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(int(n), int(a), int(s)) for n, a, s in (line.split() for line in lines if line)]


async def test_killed_listener_loses_nothing(
    nats_server: NatsServer, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    topic, group = f"crash.{uuid.uuid4().hex[:8]}", "crash-test"
    first_file, second_file = tmp_path / "first.txt", tmp_path / "second.txt"

    def start_listener(record: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(SCRIPT), nats_server.url, topic, group, str(record)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE)
        processes.append(process)
        return process

    async with EventEmitter.from_backend("nats", url=nats_server.url) as emitter:
        await asyncio.gather(
            *(emitter.emit(Numbered(route=topic, number=n)) for n in range(EVENTS))
        )

    first = start_listener(first_file)
    await eventually(lambda: len(records(first_file)) >= 300, "the first listener handled 300")
    first.kill()
    first.wait()
    before = records(first_file)
    assert len(before) < EVENTS, "the kill landed mid-stream"

    start_listener(second_file)
    await eventually(
        lambda: {n for n, *_ in before + records(second_file)} >= set(range(EVENTS)),
        f"all {EVENTS} events were handled by one listener or the other",
    )
    after = records(second_file)
    assert {n for n, *_ in before + after} == set(range(EVENTS)), "none lost"
    assert max(Counter(n for n, *_ in after).values()) == 1, "the second handles each once"
    again = {n for n, *_ in before} & {n for n, *_ in after}
    redelivered = [attempt for n, attempt, _ in after if attempt > 1]
    assert redelivered, "what the killed listener held came back as a redelivery"
    assert again <= {n for n, attempt, _ in after if attempt > 1}, (
        "an event handled twice is one the killed listener had not acked, delivered again"
    )
    print(f"\n{len(before)} handled before SIGKILL, {len(redelivered)} redelivered after")

"""A listener process killed (SIGKILL) mid-stream loses nothing: the messages it had
received and not deleted come back to its group after their visibility timeout."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from brokers import SQSServer
from dispytch import EventBase, EventEmitter

pytestmark = pytest.mark.sqs

SCRIPT = Path(__file__).with_name("sqs_listener_process.py")
EVENTS = 600


class Numbered(EventBase):
    __topic__ = "{route}"
    __event_type__ = "crash_test.numbered"

    route: str
    number: int


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def records(path: Path) -> list[tuple[int, int]]:
    """The (number, attempt) pairs the listeners recorded, in order."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(int(n), int(a)) for n, a in (line.split() for line in lines if line.strip())]


async def wait_until(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.05)


async def test_killed_listener_loses_nothing(
    sqs_server: SQSServer, processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    topic, group = f"crash.{uuid.uuid4().hex[:8]}", f"crash-{uuid.uuid4().hex[:8]}"
    record = tmp_path / "handled.txt"

    def start_listener() -> subprocess.Popen[str]:
        command = [sys.executable, str(SCRIPT), sqs_server.url, topic, group, str(record)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return process

    def handled() -> set[int]:
        return {number for number, _ in records(record)}

    first = await asyncio.to_thread(start_listener)
    async with EventEmitter.from_url(sqs_server.url) as emitter:
        await emitter.emit_many(Numbered(route=topic, number=n) for n in range(EVENTS))
    await wait_until("the first listener handled 100 events", lambda: len(handled()) >= 100)
    first.kill()
    first.wait()
    before = handled()
    assert len(before) < EVENTS, "the kill landed mid-stream"

    await asyncio.to_thread(start_listener)
    await wait_until(f"all {EVENTS} events were handled", lambda: len(handled()) == EVENTS)
    assert handled() == set(range(EVENTS))
    attempts = [attempt for _, attempt in records(record)]
    assert max(attempts) >= 2, "messages the killed listener held were delivered again"

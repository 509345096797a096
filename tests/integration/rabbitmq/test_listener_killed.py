"""A listener process killed with SIGKILL mid-stream and restarted loses no event."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from dispytch import EventBase, EventEmitter

pytestmark = pytest.mark.rabbitmq

SCRIPT = Path(__file__).with_name("listener_process.py")
EVENTS = 1500


class Ping(EventBase):
    __topic__ = "{route}"
    __event_type__ = "sigkill.ping"

    route: str
    seq: int


async def spawn(url: str, group: str, topic: str, record: Path) -> asyncio.subprocess.Process:
    """Start the listener process and return once it consumes."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), url, group, topic, str(record), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line == b"ready\n", f"listener process did not start (said {line!r})"
    return process


def handled(record: Path) -> list[int]:
    return [int(line) for line in record.read_text().splitlines() if line]


async def wait_until(condition: str, check: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out after {timeout}s waiting until {condition}"
        await asyncio.sleep(0.05)


async def test_sigkilled_listener_loses_no_event(rabbitmq_url: str, tmp_path: Path) -> None:
    topic, group = f"sigkill.{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    record = tmp_path / "handled.txt"
    record.touch()

    first = await spawn(rabbitmq_url, group, topic, record)
    try:
        async with EventEmitter.from_backend("rabbitmq", url=rabbitmq_url) as emitter:
            await asyncio.gather(*(emitter.emit(Ping(route=topic, seq=i)) for i in range(EVENTS)))
        await wait_until(
            "the first listener handled 200 events", lambda: len(handled(record)) >= 200, 30
        )
    finally:
        first.kill()
        await first.wait()
    at_kill = set(handled(record))
    assert len(at_kill) < EVENTS, "the listener was killed mid-stream, not after the stream"

    second = await spawn(rabbitmq_url, group, topic, record)
    try:
        await wait_until(
            "every event was handled", lambda: set(handled(record)) >= set(range(EVENTS)), 60
        )
    finally:
        second.terminate()
        await second.wait()
    assert set(handled(record)) == set(range(EVENTS))

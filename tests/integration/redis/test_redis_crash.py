"""Streams lose nothing when a listener process is killed (SIGKILL) mid-stream: what it
had read and not acked is claimed by the listener that comes after it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis_helpers import wait_until

from brokers import RedisServer
from dispytch import EventBase, EventEmitter

pytestmark = pytest.mark.redis

SCRIPT = Path(__file__).with_name("listener_process.py")
EVENTS = 1500


class Numbered(EventBase):
    __topic__ = "{stream}"
    __event_type__ = "crash_test.numbered"

    stream: str
    number: int


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


async def test_killed_listener_loses_nothing(
    redis_server: RedisServer, processes: list[subprocess.Popen[bytes]]
) -> None:
    topic, group = f"crash.{uuid.uuid4().hex[:8]}", "crash-test"
    redis = Redis.from_url(redis_server.url)

    def start_listener() -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, str(SCRIPT), redis_server.url, topic, group])
        processes.append(process)
        return process

    async def handled() -> int:
        return int(await redis.scard(f"{topic}:handled"))

    async def nothing_pending() -> bool:
        [info] = await redis.xinfo_groups(topic)
        return int(info["pending"]) == 0

    async with EventEmitter.from_backend("redis", url=redis_server.url) as emitter:
        for number in range(EVENTS):
            await emitter.emit(Numbered(stream=topic, number=number))

    first = start_listener()
    await wait_until("the first listener handled 200 events", lambda: at_least(handled, 200), 30.0)
    first.kill()
    first.wait()
    before = await handled()
    [info] = await redis.xinfo_groups(topic)
    assert before < EVENTS, "the kill landed mid-stream"
    assert info["pending"] > 0, "the killed listener left entries pending"

    start_listener()
    await wait_until(f"all {EVENTS} events were handled", lambda: at_least(handled, EVENTS), 30.0)
    members = await redis.smembers(f"{topic}:handled")
    assert {int(m) for m in members} == set(range(EVENTS))
    attempts = [int(a) for a in (await redis.hgetall(f"{topic}:attempts")).values()]
    assert max(attempts) >= 2, "the killed listener's pending entries were claimed"
    await wait_until("nothing is pending", nothing_pending)
    await redis.aclose()


async def at_least(count: Callable[[], Awaitable[int]], target: int) -> bool:
    return await count() >= target

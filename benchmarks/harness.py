"""The benchmark harness: what every scenario sends, counts and reports.

Each `bench_<backend>.py` module (registered in run.py) exposes scenarios, each an async
function returning rows, measuring Dispytch next to a hand-written client loop (and
FastStream where it has that backend) doing the same work on the same broker in the same
run:

- `throughput(n) -> list[Row]`: emit and consume rates, and time-to-last-ack;
- `latency(rate, seconds, rounds) -> list[LatencyRow]`: end-to-end latency at a fixed
  offered rate, with a separate emitting process (see latency.py);
- `rss() -> list[MemoryRow]`: resident memory of a consumer process (see resident.py).

A throughput scenario runs `ROUNDS` times, in turn with the others (`best_of`); the table
gives the median and the fastest run, each relative to the hand-written loop's and to
FastStream's.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import BaseModel

from dispytch import Dependency, Event, EventBase, EventListener
from dispytch.build import compiled_modules

EVENT_TYPE = "bench"
LOOP = "asyncio"
"""The event loop the scenarios run on; run.py sets it to "uvloop" with --loop uvloop."""
BUILD = "compiled" if compiled_modules() else "pure"
"""The build of dispytch-core measured: "compiled" (as release wheels are, the build `nox -s
bench` installs) or "pure" (pure Python, as `pip install ./dispytch-core` installs)."""
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
"""The Python measured on (`nox -s bench --force-python 3.12` for another than 3.11)."""


class Payload(BaseModel):
    """The event every benchmark sends; `sent_ns` is the sender's `time.monotonic_ns()`,
    set by the paced emitter of the latency scenario (the clock is shared by processes)."""

    user_id: int
    name: str
    score: float
    tags: list[str]
    sent_ns: int = 0


def sample_body(i: int) -> dict[str, Any]:
    return {"user_id": i, "name": f"user-{i}", "score": i * 0.5, "tags": ["a", "b"]}


class BenchEvent(EventBase):
    """`Payload` as a Dispytch event, sent to the topic named by `route`."""

    __topic__ = "{route}"
    __event_type__ = EVENT_TYPE

    route: str
    user_id: int
    name: str
    score: float
    tags: list[str]


def bench_events(route: str, n: int) -> list[BenchEvent]:
    return [BenchEvent(route=route, **sample_body(i)) for i in range(n)]


class Envelope(BaseModel):
    """The wire envelope, as FastStream validates it."""

    id: str
    type: str
    body: Payload
    timestamp: int


def envelope(i: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The wire envelope of event `i` (or of `body`), as a hand-written producer builds it."""
    return {
        "id": str(uuid.uuid4()),
        "type": EVENT_TYPE,
        "body": sample_body(i) if body is None else body,
        "timestamp": int(time.time() * 1000),
    }


def encoded(i: int) -> bytes:
    return json.dumps(envelope(i)).encode()


def event_envelope(event: EventBase) -> dict[str, Any]:
    """The wire envelope of a pydantic `event`, as a hand-written producer builds it."""
    return {
        "id": str(uuid.uuid4()),
        "type": EVENT_TYPE,
        "body": event.model_dump(mode="json"),
        "timestamp": int(time.time() * 1000),
    }


def encode_event(event: EventBase) -> bytes:
    """`event` in its envelope as JSON: what every emit row sends, from the same events."""
    return json.dumps(event_envelope(event)).encode()


class Counter:
    """What every benchmark handler counts with, through one injected dependency.

    With `latencies` set (the latency scenario), each event's time since it was sent is
    recorded too, for events numbered (`user_id`) `warm_up` and up.
    """

    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[int] | None = None
        self.warm_up = 0
        self.reached = asyncio.Event()
        self.target = 0

    def reset(self, target: int = 0, *, record: bool = False, warm_up: int = 0) -> None:
        """Count from zero; `reached` is set at the `target`th event."""
        self.count, self.target, self.warm_up = 0, target, warm_up
        self.latencies = [] if record else None
        self.reached = asyncio.Event()

    def hit(self, body: Payload) -> None:
        """Count one handled event."""
        self.count += 1
        if self.latencies is not None and body.user_id >= self.warm_up:
            self.latencies.append(time.monotonic_ns() - body.sent_ns)
        if self.count == self.target:
            self.reached.set()


COUNTER = Counter()


def counter_dependency() -> Counter:
    return COUNTER


async def handler(body: Payload, counter: Counter) -> None:
    """The trivial handler of the hand-written loops."""
    counter.hit(body)


def count_until(listener: EventListener, topic: str) -> asyncio.Event:
    """Register the Dispytch benchmark handler on `listener`: it counts events of `topic`
    through the injected `Counter`; the event returned is set at the counter's target
    (`COUNTER.reset(target)` first)."""

    @listener.handler(topic=topic, event=EVENT_TYPE)
    async def count(
        event: Event[Payload], counter: Annotated[Counter, Dependency(counter_dependency)]
    ) -> None:
        counter.hit(event.body)

    return COUNTER.reached


def fresh(kind: str) -> str:
    """A topic or group name no earlier run used."""
    return f"bench.{kind}.{uuid.uuid4().hex[:8]}"


ROUNDS = 3
"""How many times every throughput scenario runs."""


@dataclass
class Row:
    """One measured throughput line: `events` handled by `implementation` in `seconds`
    (the fastest run), and the `ack` seconds until the broker showed every one of them
    acked or committed (consume rows of brokers that show it). `unacked` counts the events
    the broker still held after a run's consumer stopped, in the worst run: a row with any
    does not give its time to the last ack.

    `runs` and `ack_runs` hold every run's seconds, the fastest included.
    """

    backend: str
    scenario: str
    implementation: str
    events: int
    seconds: float
    runs: tuple[float, ...] = ()
    ack: float | None = None
    ack_runs: tuple[float, ...] = ()
    unacked: int = 0
    loop: str = field(default_factory=lambda: LOOP)
    build: str = field(default_factory=lambda: BUILD)
    python: str = field(default_factory=lambda: PYTHON)

    @property
    def rate(self) -> float:
        """Events per second in the fastest run."""
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def median_rate(self) -> float:
        """Events per second in the median run."""
        seconds = statistics.median(self.runs or (self.seconds,))
        return self.events / seconds if seconds else 0.0

    @property
    def median_ack(self) -> float | None:
        """Seconds to the last ack in the median run."""
        return statistics.median(self.ack_runs) if self.ack_runs else self.ack


@dataclass
class LatencyRow:
    """End-to-end latency of `implementation` at `rate` events/s: one dict per round with
    p50/p99/p999/max (ms), `sent` and `arrived` (measured events, warm-up excluded)."""

    backend: str
    rate: int
    implementation: str
    rounds: list[dict[str, float]]
    config: str = ""
    loop: str = field(default_factory=lambda: LOOP)
    build: str = field(default_factory=lambda: BUILD)
    python: str = field(default_factory=lambda: PYTHON)

    def median(self, stat: str) -> float:
        return statistics.median(r[stat] for r in self.rounds)

    @property
    def all_arrived(self) -> bool:
        return all(r["arrived"] >= r["sent"] for r in self.rounds)


@dataclass
class MemoryRow:
    """Resident memory (MiB) of a consumer process of `implementation` after handling
    each number of events in `points`."""

    backend: str
    implementation: str
    points: dict[int, float]
    loop: str = field(default_factory=lambda: LOOP)
    build: str = field(default_factory=lambda: BUILD)
    python: str = field(default_factory=lambda: PYTHON)


Scenario = Callable[[], Awaitable[Row]]


async def best_of(scenarios: Sequence[Scenario]) -> list[Row]:
    """Run every scenario `ROUNDS` times, round after round, and keep each one's fastest
    run, with the seconds of all its runs.

    On a shared machine the fastest run is the one least disturbed by other load, and
    running the scenarios in turn exposes each of them to the same drift.
    """
    runs: list[list[Row]] = [[] for _ in scenarios]
    for _ in range(ROUNDS):
        for scenario, done in zip(scenarios, runs, strict=True):
            done.append(await scenario())
    best = []
    for done in runs:
        fastest = min(done, key=lambda row: row.seconds)
        acks = tuple(row.ack for row in done if row.ack is not None)
        best.append(
            replace(
                fastest,
                runs=tuple(row.seconds for row in done),
                ack=min(acks) if acks else None,
                ack_runs=acks,
                unacked=max(row.unacked for row in done),
            )
        )
    return best


@asynccontextmanager
async def listening(listener: EventListener, topic: str) -> AsyncIterator[None]:
    """Run `listener` for the block, counting the events of `topic` (see `count_until`):
    ready when the block starts, stopped after it."""
    count_until(listener, topic)
    task = asyncio.create_task(listener.listen())
    await listener.wait_ready()
    try:
        yield
    finally:
        await listener.stop()
        await task


@asynccontextmanager
async def in_background(loop: Coroutine[Any, Any, Any]) -> AsyncIterator[None]:
    """Run `loop` as a task for the block; cancel it and wait for it to end after."""
    task = asyncio.create_task(loop)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> float:
    """Poll `check` every millisecond until it holds; return the `perf_counter()` at which
    it was seen to hold. Raises `AssertionError` naming `what` after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while not await check():
        if time.perf_counter() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.001)
    return time.perf_counter()

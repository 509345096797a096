"""The benchmark harness: scenarios produce rows, the runner prints one table.

Each `bench_<backend>.py` module in this folder exposes `async def run(n: int) -> list[Row]`,
measuring Dispytch next to a hand-written client loop (and FastStream where it has that
backend) doing the same work on the same broker in the same run. Every scenario runs
`ROUNDS` times, in turn with the others (`best_of`); the table gives the fastest run and
the median one, each also relative to the hand-written loop's.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import BaseModel

from dispytch import Dependency, Event, EventBase, EventListener

EVENT_TYPE = "bench"


class Payload(BaseModel):
    """The event every benchmark sends."""

    user_id: int
    name: str
    score: float
    tags: list[str]


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


def envelope(i: int) -> dict[str, Any]:
    """The wire envelope of event `i`, as a hand-written producer builds it."""
    return {
        "id": str(uuid.uuid4()),
        "type": EVENT_TYPE,
        "body": sample_body(i),
        "timestamp": int(time.time() * 1000),
    }


def encoded(i: int) -> bytes:
    return json.dumps(envelope(i)).encode()


class Counter:
    """What every benchmark handler counts with, through one injected dependency."""

    def __init__(self) -> None:
        self.count = 0


COUNTER = Counter()


def counter_dependency() -> Counter:
    return COUNTER


async def handler(body: Payload, counter: Counter) -> None:
    """The trivial handler of the hand-written loops."""
    counter.count += 1


def count_until(listener: EventListener, topic: str, n: int) -> asyncio.Event:
    """Register the Dispytch benchmark handler on `listener`: it counts events of `topic`
    through the injected `Counter`; the event returned is set at the `n`th."""
    done = asyncio.Event()

    @listener.handler(topic=topic, event=EVENT_TYPE)
    async def count(
        event: Event[Payload], counter: Annotated[Counter, Dependency(counter_dependency)]
    ) -> None:
        counter.count += 1
        if counter.count == n:
            done.set()

    return done


def fresh(kind: str) -> str:
    """A topic or group name no earlier run used."""
    return f"bench.{kind}.{uuid.uuid4().hex[:8]}"


ROUNDS = 3
"""How many times every scenario runs."""


@dataclass
class Row:
    """One measured line: `events` handled by `implementation`, in `seconds` at best.

    `runs` holds the seconds of every run of the scenario, the fastest included.
    """

    backend: str
    scenario: str
    implementation: str
    events: int
    seconds: float
    runs: tuple[float, ...] = ()

    @property
    def rate(self) -> float:
        """Events per second in the fastest run."""
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def median_rate(self) -> float:
        """Events per second in the median run."""
        seconds = statistics.median(self.runs or (self.seconds,))
        return self.events / seconds if seconds else 0.0


async def best_of(scenarios: Sequence[Callable[[], Awaitable[Row]]]) -> list[Row]:
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
        best.append(replace(fastest, runs=tuple(row.seconds for row in done)))
    return best


def table(rows: list[Row]) -> str:
    """A Markdown table; each row's rates are also given relative to the hand-written loop
    of the same backend and scenario, best run to best run and median to median."""
    raw = [r for r in rows if r.implementation.startswith("raw")]
    best = {(r.backend, r.scenario): r.rate for r in raw}
    median = {(r.backend, r.scenario): r.median_rate for r in raw}
    lines = [
        "| backend | scenario | implementation | events | best s | events/s | vs raw "
        "| median events/s | vs raw (median) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        key = (r.backend, r.scenario)
        ratio = f"{r.rate / best[key]:.0%}" if key in best else "-"
        median_ratio = f"{r.median_rate / median[key]:.0%}" if key in median else "-"
        lines.append(
            f"| {r.backend} | {r.scenario} | {r.implementation} | {r.events} "
            f"| {r.seconds:.3f} | {r.rate:,.0f} | {ratio} | {r.median_rate:,.0f} | {median_ratio} |"
        )
    return "\n".join(lines)

"""The benchmark harness: scenarios produce rows, the runner prints one table.

Each `bench_<backend>.py` module in this folder exposes `async def run(n: int) -> list[Row]`,
measuring Dispytch next to a hand-written client loop (and FastStream where it has that
backend) doing the same work on the same broker in the same run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dispytch import EventBase

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


def fresh(kind: str) -> str:
    """A topic or group name no earlier run used."""
    return f"bench.{kind}.{uuid.uuid4().hex[:8]}"


@dataclass
class Row:
    """One measured line: `events` handled by `implementation` in `seconds`."""

    backend: str
    scenario: str
    implementation: str
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def timed(events: int, work: Callable[[], Awaitable[None]]) -> float:
    """Seconds `work` takes; `events` is for the reader, the caller builds the row."""
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


def table(rows: list[Row]) -> str:
    """A Markdown table; each row's rate is also given relative to the hand-written loop
    of the same backend and scenario."""
    baseline = {(r.backend, r.scenario): r.rate for r in rows if r.implementation.startswith("raw")}
    lines = [
        "| backend | scenario | implementation | events | seconds | events/s | vs raw |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = baseline.get((r.backend, r.scenario))
        ratio = f"{r.rate / base:.0%}" if base else "-"
        lines.append(
            f"| {r.backend} | {r.scenario} | {r.implementation} | {r.events} "
            f"| {r.seconds:.3f} | {r.rate:,.0f} | {ratio} |"
        )
    return "\n".join(lines)

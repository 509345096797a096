"""The cost of observability: emit and consume on the memory backend with nothing attached,
then with `Tracing` (OpenTelemetry SDK, spans batched to an exporter that drops them) and
`Metrics` (prometheus-client) attached, in the same run, in turn.

The memory backend has no network in the way, so the ratio is the instrumentation's CPU
cost per event at its largest; over a real broker it is a smaller share.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from dispytch import Dependency, Event, EventBase, EventEmitter, EventListener
from dispytch.backends.memory import get_broker
from dispytch.instrumentation import Instrumentation
from dispytch.opentelemetry import Tracing
from dispytch.prometheus import Metrics
from dispytch.routing import TopicPattern
from harness import Row, best_of

BACKEND = "memory, observability"
TOPIC = "bench.observed"
PLAIN = "dispytch, nothing attached"
OBSERVED = "dispytch + tracing + metrics"


class Observed(EventBase):
    __topic__ = "{route}"
    __event_type__ = "observed"

    route: str
    user_id: int
    name: str


class ObservedBody(BaseModel):
    user_id: int
    name: str


class Tally:
    def __init__(self) -> None:
        self.count, self.target, self.done = 0, 0, asyncio.Event()


TALLY = Tally()


def tally() -> Tally:
    return TALLY


class Dropping(SpanExporter):
    """Takes batches of finished spans and drops them: the SDK's work without the I/O."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def observability() -> tuple[Instrumentation, Instrumentation, TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    return Tracing(provider), Metrics(CollectorRegistry()), provider


async def throughput(n: int) -> list[Row]:
    events = [Observed(route=TOPIC, user_id=i, name=f"user-{i}") for i in range(n)]
    rows = await best_of(
        [
            lambda: _emit(events, observed=False),
            lambda: _emit(events, observed=True),
            lambda: _consume(events, observed=False),
            lambda: _consume(events, observed=True),
        ]
    )
    return _with_ratios(rows)


def _with_ratios(rows: list[Row]) -> list[Row]:
    """Name each observed row with its rate as a share of the plain row's, same scenario."""
    plain = {r.scenario: r.rate for r in rows if r.implementation == PLAIN}
    for row in rows:
        if row.implementation == OBSERVED and plain.get(row.scenario):
            row.implementation = f"{OBSERVED} ({row.rate / plain[row.scenario]:.0%} of the rate)"
    return rows


def _attach(*parts: EventEmitter | EventListener) -> Callable[[], None]:
    tracing, metrics, provider = observability()
    for part in parts:
        part.add_instrumentation(tracing)
        part.add_instrumentation(metrics)
    return provider.shutdown


async def _emit(events: list[Observed], *, observed: bool) -> Row:
    emitter = EventEmitter.from_url(f"memory://{uuid.uuid4().hex}")
    shutdown = _attach(emitter) if observed else None
    start = time.perf_counter()
    async with emitter:
        await asyncio.gather(*(emitter.emit(e) for e in events))
    seconds = time.perf_counter() - start
    if shutdown is not None:
        shutdown()
    return Row(BACKEND, "emit", OBSERVED if observed else PLAIN, len(events), seconds)


async def _consume(events: list[Observed], *, observed: bool) -> Row:
    broker = uuid.uuid4().hex
    get_broker(broker).join("bench", [TopicPattern(TOPIC)])
    async with EventEmitter.from_url(f"memory://{broker}") as emitter:
        for event in events:
            await emitter.emit(event)
    listener = EventListener.from_url(f"memory://{broker}", group="bench")

    @listener.handler(topic=TOPIC, event="observed")
    async def count(
        event: Event[ObservedBody], counter: Annotated[Tally, Dependency(tally)]
    ) -> None:
        counter.count += 1
        if counter.count == counter.target:
            counter.done.set()

    shutdown = _attach(listener) if observed else None
    TALLY.count, TALLY.target, TALLY.done = 0, len(events), asyncio.Event()
    start = time.perf_counter()
    await listener.start()
    await TALLY.done.wait()
    seconds = time.perf_counter() - start
    await listener.stop()
    if shutdown is not None:
        shutdown()
    return Row(BACKEND, "consume", OBSERVED if observed else PLAIN, len(events), seconds)

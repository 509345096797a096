"""The cost of observability: emit and consume on the memory backend with nothing attached,
with `Metrics` (prometheus-client), with `Tracing` (the OpenTelemetry SDK, spans batched to
an exporter that drops them) and with both, in the same run, in turn.

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
VARIANTS = ("metrics", "tracing", "tracing + metrics")


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


def instrumentations(variant: str) -> tuple[list[Instrumentation], Callable[[], None]]:
    """What `variant` attaches, and how to shut its tracer provider down afterwards."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    chosen: list[Instrumentation] = []
    if "tracing" in variant:
        chosen.append(Tracing(provider))
    if "metrics" in variant:
        chosen.append(Metrics(CollectorRegistry()))
    return chosen, provider.shutdown


async def throughput(n: int) -> list[Row]:
    events = [Observed(route=TOPIC, user_id=i, name=f"user-{i}") for i in range(n)]
    variants = (None, *VARIANTS)
    rows = await best_of(
        [
            *(lambda v=v: _emit(events, v) for v in variants),
            *(lambda v=v: _consume(events, v) for v in variants),
        ]
    )
    return _with_ratios(rows)


def _name(variant: str | None) -> str:
    return PLAIN if variant is None else f"dispytch + {variant}"


def _with_ratios(rows: list[Row]) -> list[Row]:
    """Name each instrumented row with its rate as a share of the plain row's, same
    scenario: fastest run to fastest run, and median to median."""
    plain = {r.scenario: r for r in rows if r.implementation == PLAIN}
    for row in rows:
        base = plain.get(row.scenario)
        if row.implementation != PLAIN and base is not None and base.rate:
            row.implementation += (
                f" ({row.rate / base.rate:.0%} of the rate without, "
                f"median {row.median_rate / base.median_rate:.0%})"
            )
    return rows


def _attach(variant: str | None, *parts: EventEmitter | EventListener) -> Callable[[], None]:
    if variant is None:
        return lambda: None
    chosen, shutdown = instrumentations(variant)
    for part in parts:
        for instrumentation in chosen:
            part.add_instrumentation(instrumentation)
    return shutdown


async def _emit(events: list[Observed], variant: str | None) -> Row:
    emitter = EventEmitter.from_url(f"memory://{uuid.uuid4().hex}")
    shutdown = _attach(variant, emitter)
    start = time.perf_counter()
    async with emitter:
        await asyncio.gather(*(emitter.emit(e) for e in events))
    seconds = time.perf_counter() - start
    shutdown()
    return Row(BACKEND, "emit", _name(variant), len(events), seconds)


async def _consume(events: list[Observed], variant: str | None) -> Row:
    broker = uuid.uuid4().hex
    get_broker(broker).join("bench", [TopicPattern(TOPIC)])
    emitter = EventEmitter.from_url(f"memory://{broker}")
    preloaded = _attach(variant, emitter)  # traced events carry their trace context
    async with emitter:
        for event in events:
            await emitter.emit(event)
    preloaded()
    listener = EventListener.from_url(f"memory://{broker}", group="bench")

    @listener.handler(topic=TOPIC, event="observed")
    async def count(
        event: Event[ObservedBody], counter: Annotated[Tally, Dependency(tally)]
    ) -> None:
        counter.count += 1
        if counter.count == counter.target:
            counter.done.set()

    shutdown = _attach(variant, listener)
    TALLY.count, TALLY.target, TALLY.done = 0, len(events), asyncio.Event()
    start = time.perf_counter()
    await listener.start()
    await TALLY.done.wait()
    seconds = time.perf_counter() - start
    await listener.stop()
    shutdown()
    return Row(BACKEND, "consume", _name(variant), len(events), seconds)

"""Tracing and metrics on the memory backend beyond the conformance kit's scenarios: spans a
handler starts, failed emits, label cardinality, and one scrape over several processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode, get_current_span
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from support import WAIT, eventually, fresh

from dispytch import Event, EventBase, EventEmitter, EventListener, ProducerTimeout
from dispytch.emitter.producer import Producer
from dispytch.opentelemetry import Tracing
from dispytch.prometheus import Metrics, render_latest
from dispytch.testing import Probe, running


class Visited(EventBase):
    __topic__ = "users.{user_id}.visits"
    __event_type__ = "visited"

    user_id: int


class VisitBody(BaseModel):
    user_id: int


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider


def samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


async def test_the_handler_runs_inside_its_process_span(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    broker, seen = fresh("broker"), Probe()
    listener = EventListener.from_url(f"memory://{broker}", group="visits")
    listener.add_instrumentation(Tracing(provider))
    tracer = provider.get_tracer("app")

    @listener.handler(topic="users.{user_id}.visits", event="visited")
    async def record(event: Event[VisitBody]) -> None:
        seen.add(get_current_span().get_span_context().span_id)
        with tracer.start_as_current_span("save visit"):
            pass

    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        emitter.add_instrumentation(Tracing(provider))
        await emitter.emit(Visited(user_id=42))
        await seen.wait_for(1, WAIT)
        await eventually(
            lambda: any(s.name.startswith("process") for s in spans.get_finished_spans())
        )

    by_name = {s.name: s for s in spans.get_finished_spans()}
    send, process, save = (
        by_name["send users.{user_id}.visits"],
        by_name["process users.{user_id}.visits"],
        by_name["save visit"],
    )
    assert (send.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert seen.items == [process.context.span_id]
    assert save.parent is not None
    assert save.parent.span_id == process.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.destination.name"] == "users.42.visits"
    assert process.attributes["messaging.destination.template"] == "users.{user_id}.visits"
    assert process.attributes["messaging.consumer.group.name"] == "visits"
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["dispytch.event_type"] == "visited"
    assert send.attributes is not None
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.message.id"] == process.attributes["messaging.message.id"]
    assert get_current_span().get_span_context().is_valid is False, "nothing left attached"


async def test_a_message_without_trace_headers_starts_a_trace_of_its_own(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    broker, seen = fresh("broker"), Probe()
    listener = EventListener.from_url(f"memory://{broker}", group="visits")
    listener.add_instrumentation(Tracing(provider))

    @listener.handler(topic="users.{user_id}.visits", event="visited")
    async def record(event: Event[VisitBody]) -> None:
        seen.add(event.headers)

    with provider.get_tracer("app").start_as_current_span("startup"):
        await listener.start()  # the listener's tasks inherit this context
    try:
        async with EventEmitter.from_url(f"memory://{broker}") as untraced:
            await untraced.emit(Visited(user_id=7))
            await seen.wait_for(1, WAIT)
            await eventually(lambda: len(spans.get_finished_spans()) == 2)
    finally:
        await listener.stop()
    [process] = [s for s in spans.get_finished_spans() if s.name.startswith("process")]
    assert seen.items == [{}]
    assert process.parent is None


class TimingOut(Producer):
    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        raise ProducerTimeout("no confirmation in time")


async def test_a_failed_emit_ends_its_span_with_an_error_and_counts_as_failed(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    registry = CollectorRegistry()
    emitter = EventEmitter(TimingOut(), raise_on_timeout=True)
    emitter.add_instrumentation(Tracing(provider))
    emitter.add_instrumentation(Metrics(registry))
    with pytest.raises(ProducerTimeout):
        await emitter.emit(Visited(user_id=1))

    [span] = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    [(labels, value)] = samples(registry, "dispytch_events_emitted_total")
    assert labels == {
        "backend": "TimingOut",
        "topic": "users.{user_id}.visits",
        "event_type": "visited",
        "outcome": "failed",
    }
    assert value == 1


async def test_labels_carry_the_topic_pattern_not_the_topic() -> None:
    broker, registry, seen = fresh("broker"), CollectorRegistry(), Probe()
    metrics = Metrics(registry)
    listener = EventListener.from_url(f"memory://{broker}", group="visits")
    listener.add_instrumentation(metrics)

    @listener.handler(topic="users.{user_id}.visits", event="visited")
    async def record(event: Event[VisitBody]) -> None:
        seen.add(event.body.user_id)

    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        emitter.add_instrumentation(metrics)
        for user_id in range(25):
            await emitter.emit(Visited(user_id=user_id))
        await seen.wait_for(25, WAIT)
        await eventually(lambda: len(samples(registry, "dispytch_messages_settled_total")) == 1)

    [(labels, value)] = samples(registry, "dispytch_messages_settled_total")
    assert labels == {
        "backend": "memory",
        "group": "visits",
        "topic": "users.{user_id}.visits",
        "event_type": "visited",
        "outcome": "ack",
        "reason": "",
    }
    assert value == 25
    [(emitted, count)] = samples(registry, "dispytch_events_emitted_total")
    assert (emitted["topic"], count) == ("users.{user_id}.visits", 25)
    assert samples(registry, "dispytch_consumers") == [
        ({"backend": "memory", "group": "visits"}, 0)
    ]


WORKER = textwrap.dedent(
    """
    import asyncio, sys

    from dispytch import Event, EventBase, EventEmitter, EventListener
    from dispytch.prometheus import Metrics


    class Ping(EventBase):
        __topic__ = "pings"
        __event_type__ = "ping"
        n: int


    async def main(count: int) -> None:
        metrics, done = Metrics(), asyncio.Event()
        listener = EventListener.from_url("memory://", group="workers")
        listener.add_instrumentation(metrics)
        handled = []

        @listener.handler(topic="pings", event="ping")
        async def handle(event: Event[dict]) -> None:
            handled.append(event)
            if len(handled) == count:
                done.set()

        async with listener, EventEmitter.from_url("memory://") as emitter:
            for n in range(count):
                await emitter.emit(Ping(n=n))
            await asyncio.wait_for(done.wait(), 10)


    asyncio.run(main(int(sys.argv[1])))
    """
)


def test_one_scrape_sums_every_worker_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker writes its own samples under PROMETHEUS_MULTIPROC_DIR; `render_latest`
    reads them all, as the health endpoint of a multi-worker service does."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    variables = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    for count in (3, 4):
        worker = subprocess.run(
            [sys.executable, "-c", WORKER, str(count)],
            env=variables,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert worker.returncode == 0, worker.stderr

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    body, content_type = render_latest()
    text = body.decode()
    assert content_type.startswith("text/plain")
    settled = _value(text, "dispytch_messages_settled_total", 'outcome="ack"')
    assert settled == 7
    assert _value(text, "dispytch_handler_duration_seconds_count", 'result="success"') == 7
    assert _value(text, "dispytch_messages_in_flight", 'group="workers"') == 0


def _value(exposition: str, name: str, having: str) -> float:
    """The sum of the exposition's samples of `name` whose labels contain `having`."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(f"{name}{{") and having in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_are_exposed_under_the_given_prefix() -> None:
    registry = CollectorRegistry()
    Metrics(registry, prefix="shop")
    body, _ = render_latest(registry)
    names: set[Any] = {
        line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE")
    }
    assert names == {
        "shop_messages_received_total",
        "shop_messages_settled_total",
        "shop_messages_in_flight",
        "shop_handler_duration_seconds",
        "shop_handler_retries_total",
        "shop_events_emitted_total",
        "shop_emit_duration_seconds",
        "shop_consumers",
        "shop_consumer_reconnects_total",
    }


async def test_sampled_out_traces_record_nothing_and_handle_as_usual(
    spans: InMemorySpanExporter,
) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    broker, seen = fresh("broker"), Probe()
    listener = EventListener.from_url(f"memory://{broker}", group="visits")
    listener.add_instrumentation(Tracing(provider))

    @listener.handler(topic="users.{user_id}.visits", event="visited", retries=1, retry_interval=0)
    async def record(event: Event[VisitBody]) -> None:
        seen.add(event.headers.get("traceparent"))
        if len(seen.items) == 1:
            raise ValueError("once")

    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        emitter.add_instrumentation(Tracing(provider))
        await emitter.emit(Visited(user_id=3))
        await seen.wait_for(2, WAIT)
    assert spans.get_finished_spans() == ()
    assert seen.items[0] is not None
    flags = int(seen.items[0].rsplit("-", 1)[1], 16)
    assert flags & 1 == 0, "the context travels, marked as not sampled"

"""The observability part of the conformance kit: traces and metrics every backend must give.

`ConformanceSuite` inherits these tests. They need the OpenTelemetry SDK and
prometheus-client (`pip install opentelemetry-sdk prometheus-client`) and are skipped,
saying so, without them. On a backend that carries headers the trace context travels
with each message, so the consumer's span is a child of the producer's; on one without
headers the consumer's spans are roots of their own traces.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import BaseModel

from dispytch.emitter.emitter import EventEmitter
from dispytch.event import Event, EventBase
from dispytch.listener.listener import EventListener
from dispytch.testing._kit import KitBackend, fresh, until
from dispytch.testing.probe import Probe, running


class Traced(EventBase):
    """The event these tests send."""

    __topic__ = "{route}"
    __event_type__ = "conformance.traced"

    route: str
    seq: int


class TracedBody(BaseModel):
    seq: int


class Flaky(Exception):
    """Fails an attempt; retried."""


class Observed:
    """A tracer provider recording spans in memory and a fresh metrics registry, wired to
    `Tracing` and `Metrics`; attach `instrumentations` to emitters and listeners."""

    def __init__(self) -> None:
        sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="needs opentelemetry-sdk")
        export = pytest.importorskip("opentelemetry.sdk.trace.export")
        in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
        prometheus_client = pytest.importorskip(
            "prometheus_client", reason="needs prometheus-client"
        )
        from dispytch.opentelemetry import Tracing
        from dispytch.prometheus import Metrics

        self.exporter = in_memory.InMemorySpanExporter()
        self.provider = sdk_trace.TracerProvider()
        self.provider.add_span_processor(export.SimpleSpanProcessor(self.exporter))
        self.registry = prometheus_client.CollectorRegistry()
        self.tracing = Tracing(self.provider)
        self.metrics = Metrics(self.registry)
        self.instrumentations = (self.tracing, self.metrics)

    def attach(self, *parts: EventEmitter | EventListener) -> None:
        for part in parts:
            for instrumentation in self.instrumentations:
                part.add_instrumentation(instrumentation)

    def spans(self, name_prefix: str) -> list[Any]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(name_prefix)]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` (with a `dispytch_` prefix) whose labels
        include `labels`."""
        full = f"dispytch_{name}"
        return sum(
            float(sample.value)
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == full and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def exposition(self) -> str:
        from dispytch.prometheus import render_latest

        return render_latest(self.registry)[0].decode()

    @contextmanager
    def user_span(self) -> Iterator[Any]:
        with self.provider.get_tracer("conformance").start_as_current_span("request") as span:
            yield span


class ObservabilityConformance:
    """Traces and metrics of a handler that fails once then succeeds, one that always
    fails, and of undecodable payloads; mixed into `ConformanceSuite`."""

    @pytest.mark.asyncio
    async def test_traces_and_metrics_of_retried_and_dead_lettered_events(
        self, backend: KitBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="dispytch")
        observed = Observed()
        topic, calls = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))

        @listener.handler(
            topic=topic, event=Traced.__event_type__, retries=1, retry_on=Flaky, retry_interval=0.01
        )
        async def flaky_then_fine(event: Event[TracedBody]) -> None:
            calls.add(event.body.seq)
            if event.body.seq == 2:
                raise ValueError("event 2 always fails")
            if calls.items.count(1) == 1:
                raise Flaky("the first attempt fails")

        emitter = backend.emitter()
        observed.attach(listener, emitter)
        async with running(listener, settle=backend.settle), emitter:
            with observed.user_span() as request:
                await emitter.emit(Traced(route=topic, seq=1))
            await emitter.emit(Traced(route=topic, seq=2))
            await until(
                lambda: len(observed.spans("process")) == 2, backend.timeout, "two process spans"
            )
        processed = observed.spans("process")
        send_first, send_second = sorted(observed.spans("send"), key=lambda s: s.start_time)
        assert send_first.parent.span_id == request.get_span_context().span_id
        assert send_first.context.trace_id == request.get_span_context().trace_id
        if backend.capabilities.headers:  # the trace context travelled in the headers
            [fine] = [p for p in processed if _child_of(p, send_first)]
            [failed] = [p for p in processed if _child_of(p, send_second)]
            assert fine.context.trace_id == request.get_span_context().trace_id
        else:  # each consumer span starts a trace of its own
            assert all(p.parent is None for p in processed)
            [fine] = [p for p in processed if p.attributes["dispytch.attempts"] == 2]
            [failed] = [p for p in processed if p is not fine]
        assert [e.name for e in fine.events] == ["retry"]
        assert fine.attributes["dispytch.outcome"] == "ack"
        assert fine.attributes["messaging.destination.name"] == topic
        assert fine.attributes["messaging.system"] == backend.name
        assert fine.status.is_ok
        assert failed.status.status_code.name == "ERROR"
        assert failed.attributes["dispytch.outcome"] in ("dead_letter", "native_dead_letter")
        assert failed.attributes["dispytch.reason"] == "handler_failed"

        assert observed.total("messages_settled_total", outcome="ack") == 1
        dead = observed.total("messages_settled_total", reason="handler_failed")
        assert dead == 1
        assert observed.total("handler_duration_seconds_count") == 3
        assert observed.total("handler_retries_total") == 1
        assert observed.total("messages_in_flight") == 0, "nothing in flight after stop"
        assert observed.total("events_emitted_total", outcome="sent") == 2

        logs = [r for r in caplog.records if r.name.startswith("dispytch")]
        assert logs, "the failures were logged"
        written = [
            *(str(value) for span in observed.spans("") for value in span.attributes.values()),
            *(str(event.attributes) for span in observed.spans("") for event in span.events),
            observed.exposition(),
            *(f"{r.getMessage()} {vars(r)}" for r in logs),
        ]
        for secret in _secrets(backend.settings):
            assert not any(secret in text for text in written), "a secret setting leaked"

    @pytest.mark.asyncio
    async def test_a_burst_from_emit_many_is_traced_event_by_event(
        self, backend: KitBackend
    ) -> None:
        observed = Observed()
        topic, handled = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))

        @listener.handler(topic=topic, event=Traced.__event_type__)
        async def record(event: Event[TracedBody]) -> None:
            handled.add(event.metadata)

        emitter = backend.emitter()
        observed.attach(listener, emitter)
        async with running(listener, settle=backend.settle), emitter:
            await emitter.emit_many(Traced(route=topic, seq=seq) for seq in range(5))
            await handled.wait_for(5, backend.timeout)
            await until(lambda: len(observed.spans("process")) == 5, backend.timeout, "spans")
        sends, processed = observed.spans("send"), observed.spans("process")
        assert len(sends) == 5
        assert len({s.context.trace_id for s in sends}) == 5, "a trace per event"
        if backend.capabilities.headers:
            assert all(any(_child_of(p, s) for s in sends) for p in processed)
        assert observed.total("events_emitted_total", outcome="sent") == 5
        where = sorted((str(m.get("partition")), str(m.get("offset"))) for m in handled.items)
        if all(p != "None" for p, _ in where):  # the backend knows partitions and offsets
            spans_say = sorted(
                (
                    str(s.attributes.get("messaging.destination.partition.id")),
                    str(s.attributes.get("messaging.kafka.offset")),
                )
                for s in processed
            )
            assert spans_say == where

    @pytest.mark.asyncio
    async def test_undecodable_payloads_are_counted(self, backend: KitBackend) -> None:
        observed = Observed()
        topic = fresh("topic")
        listener = backend.listener(fresh("group"))

        @listener.handler(topic=topic, event=Traced.__event_type__)
        async def fine(event: Event[TracedBody]) -> None:
            pass

        observed.attach(listener)
        async with running(listener, settle=backend.settle):
            raw = EventEmitter.from_backend(backend.name, **backend.settings)
            async with raw, backend.emitter() as emitter:
                for seq in range(10):
                    if seq in (3, 7):
                        await raw.producer.send(topic, b"\xff\x00 not an event")
                    else:
                        await emitter.emit(Traced(route=topic, seq=seq))
                await until(
                    lambda: observed.total("messages_settled_total") == 10,
                    backend.timeout,
                    "ten settled messages",
                )
        assert observed.total("messages_received_total") == 10
        assert observed.total("messages_settled_total", outcome="ack", reason="") == 8
        undecodable = observed.total("messages_settled_total", reason="undecodable")
        assert undecodable == 2
        assert observed.total("messages_settled_total", outcome="dead_letter") == 2
        assert len(observed.spans("process")) == 10, "undecodable messages get spans too"


def _secrets(settings: Any) -> list[str]:
    """What of `settings` must never be written out: URL credentials (the whole
    `user:password@`, and a password differing from the user name) and secret values."""
    found: list[str] = []
    for value in dict(settings).values():
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
            if not isinstance(value, str) or "://" not in value:
                found.append(str(value))
                continue
        if isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            if parts.password:
                found.append(f"{parts.username}:{parts.password}@")
                if parts.password != parts.username:
                    found.append(parts.password)
    return [secret for secret in found if secret]


def _child_of(span: Any, parent: Any) -> bool:
    return span.parent is not None and (span.parent.trace_id, span.parent.span_id) == (
        parent.context.trace_id,
        parent.context.span_id,
    )

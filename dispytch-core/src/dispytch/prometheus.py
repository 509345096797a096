"""Prometheus metrics for emitters and listeners (`pip install "dispytch-core[prometheus]"`).

::

    metrics = Metrics()                 # the default registry, names prefixed "dispytch"
    emitter.add_instrumentation(metrics)
    listener.add_instrumentation(metrics)
    body, content_type = render_latest()   # what a /metrics endpoint serves

Labels are the backend's name, the consumer group, the topic *pattern* of the handler
(`users.{user_id}`, never the concrete `users.42`; for emits, the event's `__topic__`
template) and the event type, so their number stays bounded. A message settled before
it was routed (undecodable, unmatched) has an empty `topic` and `event_type`.

Several worker processes: prometheus-client's multiprocess mode. Point the environment
variable `PROMETHEUS_MULTIPROC_DIR` at an empty directory before the workers start
(before they import prometheus_client); each worker writes its samples there and
`render_latest()` in any of them (or in the supervisor) returns the sum over all
workers. When a worker exits, call `mark_worker_dead(pid)` so that its share of the
gauges (messages in flight, consumers running) is dropped.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from dispytch.instrumentation import Delivery, Emission, HandlerCall, Instrumentation, Source

__all__ = ["Metrics", "mark_worker_dead", "render_latest"]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable naming the directory of prometheus-client's multiprocess mode."""

DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Seconds: from a sub-millisecond handler to one that waits on a slow service."""

_LISTENER = ("backend", "group")
_HANDLED = ("backend", "group", "topic", "event_type")


class Metrics(Instrumentation):
    """Counts and times messages and emits; attach one instance to emitters and listeners.

    Metrics (each name starts with `prefix`):

    - `_messages_received_total{backend, group}`
    - `_messages_settled_total{backend, group, topic, event_type, outcome, reason}`:
      outcome `ack`, `nack`, `dead_letter`, `native_dead_letter` or `unsettled`; reason
      empty when handled, else `handler_failed`, `undecodable`, `invalid`, `unmatched` ...
    - `_messages_in_flight{backend, group}`: received and not settled yet
    - `_handler_duration_seconds{backend, group, topic, event_type, handler, result}`: one
      observation per attempt; result `success` or `error`
    - `_handler_retries_total{backend, group, topic, event_type, handler}`
    - `_events_emitted_total{backend, topic, event_type, outcome}`: outcome `sent` or `failed`
    - `_emit_duration_seconds{backend, topic, event_type}`: until the broker confirmed
    - `_consumers{backend, group}` running and `_consumer_reconnects_total{backend, group}`
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        prefix: str = "dispytch",
        *,
        buckets: tuple[float, ...] = DURATION_BUCKETS,
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self.registry = registry

        def name(suffix: str) -> str:
            return f"{prefix}_{suffix}" if prefix else suffix

        self.received = Counter(
            name("messages_received"), "Messages received.", _LISTENER, registry=registry
        )
        self.settled = Counter(
            name("messages_settled"),
            "Messages settled, by outcome and reason.",
            (*_HANDLED, "outcome", "reason"),
            registry=registry,
        )
        self.in_flight = Gauge(
            name("messages_in_flight"),
            "Messages received and not settled yet.",
            _LISTENER,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.handler_duration = Histogram(
            name("handler_duration_seconds"),
            "Seconds a handler attempt took.",
            (*_HANDLED, "handler", "result"),
            registry=registry,
            buckets=buckets,
        )
        self.retries = Counter(
            name("handler_retries"),
            "Handler attempts retried.",
            (*_HANDLED, "handler"),
            registry=registry,
        )
        self.emitted = Counter(
            name("events_emitted"),
            "Events emitted, by outcome.",
            ("backend", "topic", "event_type", "outcome"),
            registry=registry,
        )
        self.emit_duration = Histogram(
            name("emit_duration_seconds"),
            "Seconds from emit until the broker confirmed the event (or failed).",
            ("backend", "topic", "event_type"),
            registry=registry,
            buckets=buckets,
        )
        self.consumers = Gauge(
            name("consumers"),
            "Consumers running.",
            _LISTENER,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.reconnects = Counter(
            name("consumer_reconnects"),
            "Times a consumer got its connection back.",
            _LISTENER,
            registry=registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    # -- listener --------------------------------------------------------------------------

    def consumer_started(self, source: Source) -> None:
        self.consumers.labels(*_source(source)).inc()

    def consumer_stopped(self, source: Source) -> None:
        self.consumers.labels(*_source(source)).dec()

    def consumer_reconnected(self, source: Source) -> None:
        self.reconnects.labels(*_source(source)).inc()

    def message_received(self, delivery: Delivery) -> None:
        self._child(self.received, _source(delivery.source)).inc()
        self._child(self.in_flight, _source(delivery.source)).inc()

    def handler_finished(self, call: HandlerCall) -> None:
        result = "success" if call.error is None else "error"
        labels = (*_handled(call.delivery, call.pattern), call.handler, result)
        self._child(self.handler_duration, labels).observe(call.duration)

    def retry_scheduled(self, call: HandlerCall, delay: float) -> None:
        labels = (*_handled(call.delivery, call.pattern), call.handler)
        self._child(self.retries, labels).inc()

    def message_settled(self, delivery: Delivery) -> None:
        self._child(self.in_flight, _source(delivery.source)).dec()
        outcome, reason = delivery.outcome or "unsettled", delivery.reason or ""
        labels = (*_handled(delivery, delivery.pattern), outcome, reason)
        self._child(self.settled, labels).inc()

    # -- emitter ---------------------------------------------------------------------------

    def event_emitted(self, emission: Emission) -> None:
        self._emitted(emission, "sent")

    def emit_failed(self, emission: Emission, error: BaseException) -> None:
        self._emitted(emission, "failed")

    def _emitted(self, emission: Emission, outcome: str) -> None:
        labels = (emission.source.backend, emission.pattern, emission.event.event_type())
        self._child(self.emitted, (*labels, outcome)).inc()
        self._child(self.emit_duration, labels).observe(emission.duration)

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        """`metric.labels(*labels)`, looked up once: prometheus-client's lookup takes a lock."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


def render_latest(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The exposition a `/metrics` endpoint serves, and its content type.

    With `PROMETHEUS_MULTIPROC_DIR` set (and no `registry` given) it is the sum over
    every worker process writing there; else the given registry, or the default one.
    """
    if registry is None:
        path = os.environ.get(MULTIPROCESS_ENV)
        if path:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        else:
            registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Drop the gauge samples of the exited worker process `pid` (multiprocess mode)."""
    path = os.environ.get(MULTIPROCESS_ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _source(source: Source) -> tuple[str, str]:
    return source.backend, source.group or ""


def _handled(delivery: Delivery, pattern: str | None) -> tuple[str, str, str, str]:
    event_type = delivery.event_type if pattern is not None else None
    return (*_source(delivery.source), pattern or "", event_type or "")

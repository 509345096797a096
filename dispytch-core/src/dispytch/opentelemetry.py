"""OpenTelemetry tracing for emitters and listeners (`pip install "dispytch-core[otel]"`).

Needs only `opentelemetry-api`: spans go to whatever SDK (or vendor distribution) the
application configured, or nowhere when it configured none. ::

    tracing = Tracing()                 # the global tracer provider, or Tracing(provider)
    emitter.add_instrumentation(tracing)
    listener.add_instrumentation(tracing)

- Each emitted event gets a PRODUCER span, `send <topic template>`, a child of the span
  current at `emit()`; its W3C trace context is injected into the message headers.
- Each handler call gets a CONSUMER span, `process <topic pattern>`, a child of the
  producer span found in the headers, so one trace runs request -> emit -> handle across
  processes and brokers. The span is current while the handler runs (spans the handler
  starts are its children); retries are span events; the span ends when the message is
  settled, with `dispytch.outcome` (and `dispytch.reason`), and status ERROR unless it
  was handled.
- A message settled before any handler ran (undecodable, unmatched, delivered too often)
  gets one `process` span of its own, so it shows up too.
- On a backend without headers (Redis Pub/Sub) the context cannot travel: consumer spans
  are then roots of their own traces, unlinked to the producer's.

Attributes follow the OpenTelemetry messaging conventions (`messaging.system` is the
backend's name, `messaging.destination.name` the concrete topic, and so on). Nothing
from backend settings or URLs, and no header or payload content, is recorded.
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from dispytch.instrumentation import Delivery, Emission, HandlerCall, Instrumentation

__all__ = ["Tracing"]

_SPAN = "otel.span"
_SPANS = "otel.spans"
_PARENT = "otel.parent"
_TOKEN = "otel.token"
_RECEIVED = "otel.received"


class Tracing(Instrumentation):
    """Traces emits and handler calls; attach one instance to emitters and listeners.

    `tracer_provider` defaults to the global one (`trace.set_tracer_provider`);
    `propagator` to the global text-map propagator (W3C trace context and baggage).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self.tracer = trace.get_tracer("dispytch", _version(), tracer_provider=tracer_provider)
        self.propagator = propagator

    # -- emitter ---------------------------------------------------------------------------

    def emit_started(self, emission: Emission) -> None:
        message = emission.message
        attributes: dict[str, Any] = {
            "messaging.system": emission.source.backend,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": message.topic,
            "messaging.destination.template": emission.pattern,
            "messaging.message.id": emission.event.id,
            "dispytch.event_type": emission.event.event_type(),
        }
        span = self.tracer.start_span(
            f"send {emission.pattern}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        emission.state[_SPAN] = span
        self._inject(message.headers, trace.set_span_in_context(span))

    def event_emitted(self, emission: Emission) -> None:
        emission.state[_SPAN].end()

    def emit_failed(self, emission: Emission, error: BaseException) -> None:
        span: Span = emission.state[_SPAN]
        span.record_exception(error)
        span.set_attribute("error.type", _qualified(error))
        span.set_status(Status(StatusCode.ERROR, f"emit failed: {type(error).__name__}"))
        span.end()

    # -- listener --------------------------------------------------------------------------

    def message_received(self, delivery: Delivery) -> None:
        delivery.state[_PARENT] = self._extract(delivery.message.headers)
        delivery.state[_RECEIVED] = time.time_ns()

    def handler_started(self, call: HandlerCall) -> None:
        span: Span | None = call.state.get(_SPAN)
        if span is None:
            delivery = call.delivery
            span = self.tracer.start_span(
                f"process {call.pattern}",
                context=delivery.state.get(_PARENT),
                kind=SpanKind.CONSUMER,
                attributes=_consumer_attributes(delivery, call.pattern, call.handler),
            )
            call.state[_SPAN] = span
            delivery.state.setdefault(_SPANS, []).append((span, call))
        call.state[_TOKEN] = otel_context.attach(trace.set_span_in_context(span))

    def handler_finished(self, call: HandlerCall) -> None:
        token = call.state.pop(_TOKEN, None)
        if token is not None:
            otel_context.detach(token)

    def retry_scheduled(self, call: HandlerCall, delay: float) -> None:
        error = call.error
        attributes: dict[str, Any] = {"dispytch.attempt": call.attempt, "dispytch.delay": delay}
        if error is not None:
            attributes["exception.type"] = _qualified(error)
            attributes["exception.message"] = str(error)
        call.state[_SPAN].add_event("retry", attributes)

    def message_settled(self, delivery: Delivery) -> None:
        spans: list[tuple[Span, HandlerCall | None]] = delivery.state.get(_SPANS) or [
            (self._settled_alone(delivery), None)
        ]
        failed = delivery.outcome != "ack" or delivery.reason not in (None, "unmatched")
        settled: dict[str, Any] = {"dispytch.outcome": delivery.outcome or "unsettled"}
        if delivery.reason is not None:
            settled["dispytch.reason"] = delivery.reason
        for span, call in spans:
            if not span.is_recording():  # sampled out: nothing to add
                span.end()
                continue
            attributes = settled
            if call is not None:
                attributes = {**settled, "dispytch.attempts": call.attempt}
                if call.error is not None:
                    span.record_exception(call.error)
                    attributes["error.type"] = _qualified(call.error)
            span.set_attributes(attributes)
            if failed:
                span.set_status(Status(StatusCode.ERROR, f"{delivery.outcome}: {delivery.reason}"))
            span.end()

    def _settled_alone(self, delivery: Delivery) -> Span:
        """The span of a message no handler ran on, from its receipt to now."""
        name = "process" if delivery.pattern is None else f"process {delivery.pattern}"
        return self.tracer.start_span(
            name,
            context=delivery.state.get(_PARENT),
            kind=SpanKind.CONSUMER,
            attributes=_consumer_attributes(delivery, delivery.pattern, None),
            start_time=delivery.state.get(_RECEIVED),
        )

    # -- propagation -----------------------------------------------------------------------

    def _inject(self, headers: dict[str, str], context: Context) -> None:
        (self.propagator or propagate.get_global_textmap()).inject(headers, context=context)

    def _extract(self, headers: dict[str, str]) -> Context:
        """The context the headers carry; a message without any is the root of a trace."""
        propagator = self.propagator or propagate.get_global_textmap()
        if headers and not propagator.fields.isdisjoint(headers):
            return propagator.extract(headers)
        return _NO_PARENT


_NO_PARENT = Context()


def _consumer_attributes(
    delivery: Delivery, pattern: str | None, handler: str | None
) -> dict[str, Any]:
    message = delivery.message
    attributes: dict[str, Any] = {
        "messaging.system": delivery.source.backend,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": message.topic,
    }
    if message.attempt > 1:
        attributes["dispytch.delivery_attempt"] = message.attempt
    if pattern is not None:
        attributes["messaging.destination.template"] = pattern
    if delivery.source.group is not None:
        attributes["messaging.consumer.group.name"] = delivery.source.group
    if delivery.event_id is not None:
        attributes["messaging.message.id"] = delivery.event_id
    if delivery.event_type is not None:
        attributes["dispytch.event_type"] = delivery.event_type
    if handler is not None:
        attributes["dispytch.handler"] = handler
    partition, offset = message.metadata.get("partition"), message.metadata.get("offset")
    if isinstance(partition, int):
        attributes["messaging.destination.partition.id"] = str(partition)
    if isinstance(offset, int):
        attributes["messaging.kafka.offset"] = offset
    return attributes


def _qualified(error: BaseException) -> str:
    kind = type(error)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _version() -> str | None:
    try:
        return version("dispytch-core")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return None

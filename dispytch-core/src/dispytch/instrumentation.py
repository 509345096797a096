"""The instrumentation hook: what core reports at every point an operator cares about.

Subclass `Instrumentation`, override the methods you need (each is a no-op by default)
and attach it with `listener.add_instrumentation(x)` or `emitter.add_instrumentation(x)`.
Tracing (`dispytch.opentelemetry`) and metrics (`dispytch.prometheus`) are built on it.

Listener side, for each message::

    message_received -> (handler_started -> handler_finished [-> retry_scheduled])*
                     -> message_settled

Emitter side, for each event: `emit_started` (which may add headers to the outgoing
message), then `event_emitted` or `emit_failed`.

Methods are called synchronously on the data path, in the task handling the message
or emitting the event (so a context variable set in `handler_started` is visible to
the handler); they must be quick and must not raise. Objects passed in carry a
`state` dict an instrumentation may keep its own data in (a span, a start time);
keys should be namespaced by the instrumentation. Nothing here reads backend
settings: `backend` is the backend's name, never its URL.

With no instrumentation attached, core does not build these objects at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from dispytch.emitter.producer import OutgoingMessage
    from dispytch.event import EventBase
    from dispytch.listener.consumer import Message

logger = logging.getLogger("dispytch.instrumentation")

SettledOutcome = Literal["ack", "nack", "dead_letter", "native_dead_letter", "unsettled"]
"""How a message was settled. `unsettled`: left to the broker to deliver again (the
listener stopped before it finished, or acking it failed)."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where messages come from or go to: the backend's name and the consumer group."""

    backend: str
    group: str | None = None


@dataclass(eq=False, slots=True)
class Delivery:
    """One received message on its way through a listener.

    `event_type` and `event_id` are filled in once the payload is decoded (they stay
    None for an undecodable one); `pattern` is the topic pattern of the handler that
    decided the outcome (or of the first matching one), None when no handler matched.
    `outcome` and `reason` are set when the message is settled; `reason` is None for
    a message handled successfully, and `error` is what stopped one that was not.
    """

    message: Message
    source: Source
    event_type: str | None = None
    event_id: str | None = None
    pattern: str | None = None
    outcome: SettledOutcome | None = None
    reason: str | None = None
    error: BaseException | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class HandlerCall:
    """One attempt of one handler on one delivery.

    `attempt` counts this handler's tries (1-based); `duration` (seconds) and `error`
    are set when the attempt finished. `state` is shared by every attempt of the
    handler on this delivery.
    """

    delivery: Delivery
    handler: str
    pattern: str
    attempt: int
    state: dict[str, Any]
    started_at: float = 0.0
    """`time.perf_counter()` when the attempt started."""
    duration: float = 0.0
    error: BaseException | None = None


@dataclass(eq=False, slots=True)
class Emission:
    """One event being emitted. Headers added to `message.headers` in `emit_started`
    travel with it on backends that carry headers. `duration` (seconds) is set when
    the producer confirmed it or failed."""

    event: EventBase
    message: OutgoingMessage
    source: Source
    started_at: float = 0.0
    """`time.perf_counter()` when the emit started."""
    duration: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def pattern(self) -> str:
        """The event class's topic template (`users.{user_id}`), for low-cardinality labels."""
        return getattr(type(self.event), "__topic__", self.message.topic)


class Instrumentation:
    """Receives what core reports; every method does nothing unless overridden."""

    def consumer_started(self, source: Source) -> None:
        """A listener's consumer started and is about to pull messages."""

    def consumer_stopped(self, source: Source) -> None:
        """A listener's consumer stopped."""

    def consumer_reconnected(self, source: Source) -> None:
        """A consumer got its connection back after losing it (where the backend tells)."""

    def message_received(self, delivery: Delivery) -> None:
        """A message is about to be handled: decoded, routed and given to its handlers."""

    def handler_started(self, call: HandlerCall) -> None:
        """A handler attempt starts (in the task that runs the handler)."""

    def handler_finished(self, call: HandlerCall) -> None:
        """A handler attempt finished: `call.duration` and `call.error` say how."""

    def retry_scheduled(self, call: HandlerCall, delay: float) -> None:
        """The failed attempt `call` is tried again after `delay` seconds."""

    def message_settled(self, delivery: Delivery) -> None:
        """The message was settled: `delivery.outcome` and `delivery.reason` say how."""

    def emit_started(self, emission: Emission) -> None:
        """An event is about to be handed to the producer; headers may be added."""

    def event_emitted(self, emission: Emission) -> None:
        """The producer confirmed the event."""

    def emit_failed(self, emission: Emission, error: BaseException) -> None:
        """Emitting the event failed with `error` (a `ProducerTimeout` among others)."""


class _FanOut(Instrumentation):
    """Several instrumentations called in turn; one that raises is logged and skipped.

    Each method calls only the instrumentations that override it, through bound
    methods looked up once.
    """

    def __init__(self, parts: Sequence[Instrumentation]) -> None:
        self.parts = tuple(parts)
        self._calls = {
            name: tuple(
                getattr(part, name)
                for part in parts
                if getattr(type(part), name) is not getattr(Instrumentation, name)
            )
            for name in _HOOKS
        }

    def _each(self, name: str, *args: Any) -> None:
        for call in self._calls[name]:
            try:
                call(*args)
            except Exception:
                logger.exception("instrumentation %r failed in %s", call.__self__, name)

    def consumer_started(self, source: Source) -> None:
        self._each("consumer_started", source)

    def consumer_stopped(self, source: Source) -> None:
        self._each("consumer_stopped", source)

    def consumer_reconnected(self, source: Source) -> None:
        self._each("consumer_reconnected", source)

    def message_received(self, delivery: Delivery) -> None:
        self._each("message_received", delivery)

    def handler_started(self, call: HandlerCall) -> None:
        self._each("handler_started", call)

    def handler_finished(self, call: HandlerCall) -> None:
        self._each("handler_finished", call)

    def retry_scheduled(self, call: HandlerCall, delay: float) -> None:
        self._each("retry_scheduled", call, delay)

    def message_settled(self, delivery: Delivery) -> None:
        self._each("message_settled", delivery)

    def emit_started(self, emission: Emission) -> None:
        self._each("emit_started", emission)

    def event_emitted(self, emission: Emission) -> None:
        self._each("event_emitted", emission)

    def emit_failed(self, emission: Emission, error: BaseException) -> None:
        self._each("emit_failed", emission, error)


_HOOKS = [name for name in vars(Instrumentation) if not name.startswith("_")]


def combine(parts: Iterable[Instrumentation]) -> Instrumentation | None:
    """What core calls for `parts`: None for none (so the hot path can skip it), else a
    fan-out that calls each in turn and logs, rather than raises, what one raises."""
    parts = list(parts)
    if not parts:
        return None
    return _FanOut(parts)


def check_instrumentation(candidate: object) -> Instrumentation:
    """`candidate`, or a `TypeError` saying what an instrumentation is."""
    if not isinstance(candidate, Instrumentation):
        raise TypeError(
            f"{candidate!r} is not an instrumentation; subclass "
            "dispytch.instrumentation.Instrumentation (e.g. dispytch.opentelemetry.Tracing "
            "or dispytch.prometheus.Metrics)"
        )
    return candidate


@runtime_checkable
class ReportsReconnects(Protocol):
    """A consumer that can tell when it got its connection back after losing it."""

    def on_reconnect(self, callback: Callable[[], None]) -> None: ...

"""What a test client records: handler calls, dead letters, emitted events, failures."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from dispytch.di.resolve import InvalidEvent
from dispytch.event import Event, EventBase
from dispytch.instrumentation import Delivery, Emission, HandlerCall, Instrumentation
from dispytch.middleware import CallNext, Context
from dispytch.testing.stand_in import StandInBroker

E = TypeVar("E", bound=EventBase)

_FAILED = "dispytch.testing.failed"
"""Key in `Delivery.state`: {handler name: (attempt, error)} of attempts not retried."""

_FINAL = frozenset({"ack", "dead_letter", "native_dead_letter"})


@dataclass(eq=False)
class CallRecord:
    """One call (one attempt) of a handler: the `Event` it got, and what it raised."""

    handler: str
    event: Event[Any]
    attempt: int
    error: BaseException | None = None
    finished: bool = False

    @property
    def body(self) -> Any:
        """The event body, as the handler received it."""
        return self.event.body


@dataclass(frozen=True)
class DeadLetterRecord:
    """A message a listener gave up on: why (`reason`), what stopped it (`error`), which
    handler failed (None when none was called), and how it was settled: `dead_letter`
    (published to the dead-letter topic), `native_dead_letter` (left to the broker's
    dead-letter queue) or `ack` (no destination: logged, then acked)."""

    reason: str
    error: BaseException | None
    topic: str
    event_type: str | None
    handler: str | None
    attempts: int
    settled_as: str
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class Failure:
    """A handler's final exception on one message (no retry left)."""

    handler: str
    topic: str
    error: BaseException


class EmittedEvents(Sequence[EventBase]):
    """The events the code under test emitted, in order, with assertion helpers."""

    def __init__(self) -> None:
        self._events: list[EventBase] = []

    def add(self, event: EventBase) -> None:
        """Record `event` as emitted."""
        self._events.append(event)

    @overload
    def __getitem__(self, index: int) -> EventBase: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[EventBase]: ...
    def __getitem__(self, index: int | slice) -> EventBase | Sequence[EventBase]:
        return self._events[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[EventBase]:
        return iter(self._events)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EmittedEvents):
            return self._events == other._events
        return isinstance(other, list) and self._events == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EmittedEvents({self._events!r})"

    def of_type(self, event_type: type[E]) -> list[E]:
        """The emitted events of class `event_type`, in order."""
        return [e for e in self._events if isinstance(e, event_type)]

    def assert_any(self, event_type: type[E], **fields: Any) -> E:
        """The first emitted `event_type` whose fields equal `fields`; `AssertionError`
        listing what was emitted when there is none."""
        for event in self.of_type(event_type):
            if not _differences(event, fields):
                return event
        raise AssertionError(self._missing(event_type, fields))

    def assert_none(self, event_type: type[EventBase], **fields: Any) -> None:
        """`AssertionError` naming the event if an `event_type` with `fields` was emitted."""
        for event in self.of_type(event_type):
            if not _differences(event, fields):
                raise AssertionError(f"{_describe(event)} was emitted, and should not have been")

    def _missing(self, event_type: type[EventBase], fields: dict[str, Any]) -> str:
        wanted = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        lines = [f"no {event_type.__name__}({wanted}) was emitted;"]
        if not self._events:
            lines.append("nothing was emitted at all")
            return "\n".join(lines)
        lines.append(f"emitted instead ({len(self._events)}):")
        for event in self._events:
            line = f"  - {_describe(event)}"
            if isinstance(event, event_type):
                diff = "; ".join(
                    f"{k}: {actual} != {expected!r}"
                    for k, (actual, expected) in _differences(event, fields).items()
                )
                line += f"  <- differs in {diff}"
            lines.append(line)
        return "\n".join(lines)


_ABSENT = object()


def _differences(event: EventBase, fields: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    found = {}
    for name, expected in fields.items():
        actual = getattr(event, name, _ABSENT)
        if actual is _ABSENT:
            found[name] = ("no such field", expected)
        elif actual != expected:
            found[name] = (repr(actual), expected)
    return found


def _describe(event: EventBase) -> str:
    body = ", ".join(f"{k}={v!r}" for k, v in event if k != "id")
    return f"{type(event).__name__}({body}) to {_topic(event)!r}"


def _topic(event: EventBase) -> str:
    try:
        return event.topic()
    except ValueError:
        return "?"


class Recorder(Instrumentation):
    """Records through the instrumentation hook (settled messages, final failures, emitted
    events) and, as the outermost listener middleware, every handler call."""

    def __init__(self, broker: StandInBroker) -> None:
        self.broker = broker
        self.calls: list[CallRecord] = []
        self.dead_letters: list[DeadLetterRecord] = []
        self.emitted = EmittedEvents()
        self.failures: list[Failure] = []
        """Final handler failures not yet raised in the test."""

    async def middleware(self, ctx: Context, call_next: CallNext[Context]) -> Any:
        """Record the call (what the handler gets, what it raises) around the chain."""
        record = CallRecord(ctx.handler.name, ctx.event, ctx.attempt)
        self.calls.append(record)
        try:
            return await call_next(ctx)
        except BaseException as exc:
            record.error = exc
            raise
        finally:
            record.event, record.finished = ctx.event, True

    def handler_finished(self, call: HandlerCall) -> None:
        if call.error is not None:
            call.delivery.state.setdefault(_FAILED, {})[call.handler] = (call.attempt, call.error)

    def retry_scheduled(self, call: HandlerCall, delay: float) -> None:
        call.delivery.state.get(_FAILED, {}).pop(call.handler, None)

    def message_settled(self, delivery: Delivery) -> None:
        broker = self.broker
        failed: dict[str, tuple[int, BaseException]] = delivery.state.get(_FAILED, {})
        for handler, (_, error) in failed.items():
            if isinstance(error, Exception) and not isinstance(error, InvalidEvent):
                self.failures.append(Failure(handler, delivery.message.topic, error))
                broker.changed.set()
        if delivery.outcome in _FINAL:
            if delivery.error is not None:
                self._dead_lettered(delivery, failed)
            broker.settled(delivery.message.metadata["delivery_id"])

    def event_emitted(self, emission: Emission) -> None:
        self.emitted.add(emission.event)

    def _dead_lettered(
        self, delivery: Delivery, failed: dict[str, tuple[int, BaseException]]
    ) -> None:
        """One record per handler that gave up on the message, or one for the message
        when it was given up on before any handler ran (undecodable, unmatched ...)."""
        msg = delivery.message
        given_up: list[tuple[str | None, int, BaseException | None, str]] = [
            (name, attempts, error, _reason(error)) for name, (attempts, error) in failed.items()
        ] or [(None, msg.attempt, delivery.error, delivery.reason or "unknown")]
        for handler, attempts, error, reason in given_up:
            self.dead_letters.append(
                DeadLetterRecord(
                    reason=reason,
                    error=error,
                    topic=msg.topic,
                    event_type=delivery.event_type,
                    handler=handler,
                    attempts=attempts,
                    settled_as=delivery.outcome or "unknown",
                    payload=msg.payload,
                )
            )


def _reason(error: BaseException) -> str:
    return "invalid" if isinstance(error, InvalidEvent) else "handler_failed"

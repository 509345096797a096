"""Taking one message from bytes to a settled outcome: decode, route, handle, retry,
dead-letter, then ack or nack. The listener decides when; this decides what."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final, Literal

from dispytch.dead_letter import KEPT_PAYLOAD_BYTES, DeadLetter, Reason, error_text
from dispytch.di.plan import EventParam
from dispytch.di.resolve import InvalidEvent, Scope, run, run_on
from dispytch.emitter.producer import OutgoingMessage, Producer, publisher
from dispytch.instrumentation import (
    Delivery,
    HandlerCall,
    Instrumentation,
    SettledOutcome,
    Source,
)
from dispytch.listener.batching import BatchRunner, Settling, hand_to_batches
from dispytch.listener.consumer import Consumer, Message, SupportsDeadLetter, SupportsNack
from dispytch.listener.handler import DEFAULT, Handler
from dispytch.listener.outcome import Outcome
from dispytch.listener.replies import Replier
from dispytch.middleware import Chain, Context
from dispytch.serialization import Envelope, Serializer

logger = logging.getLogger("dispytch.listener")

UnmatchedPolicy = Literal["ack", "dead_letter"]

_ROUTE_CACHE_SIZE = 4096
_CACHED_TYPE_LENGTH = 256


# Every access to an enum member looks it up on its class (~70 ns); the per-message
# path compares with these constants instead (Final: the compiled build reads them
# without a lookup in the module's namespace).
ACK: Final = Outcome.ACK
DEAD_LETTERED: Final = Outcome.DEAD_LETTERED
NACK: Final = Outcome.NACK
SETTLED: Final = Outcome.SETTLED

_SETTLED_AS: dict[Outcome, SettledOutcome] = {
    ACK: "ack",
    DEAD_LETTERED: "dead_letter",
    NACK: "nack",
    SETTLED: "native_dead_letter",
}


class Dispatcher:
    """Handles single messages for a listener; never raises for a bad message.

    With an `instrumentation`, `handle` reports every message to it (and the
    uninstrumented path does no work for that).
    """

    def __init__(
        self,
        consumer: Consumer,
        handlers: Sequence[Handler],
        *,
        serializer: Serializer,
        producer: Producer | None,
        dead_letter_topic: str | None,
        native_dead_letter: bool,
        on_unmatched: UnmatchedPolicy,
        max_deliveries: int | None,
        redelivery_delay: float,
        max_message_bytes: int | None = None,
        source: Source | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        self.consumer = consumer
        self._async_ack = inspect.iscoroutinefunction(consumer.ack)  # decided once, not per ack
        self.handlers = handlers
        self.serializer = serializer
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.native_dead_letter = native_dead_letter and isinstance(consumer, SupportsDeadLetter)
        self.on_unmatched = on_unmatched
        self.max_deliveries = max_deliveries
        self.max_message_bytes = max_message_bytes
        self.redelivery_delay = redelivery_delay
        self.replier = Replier(producer, serializer)
        self._chains = {
            id(h): Chain.build(h.middleware, _endpoint(h)).run
            for h in handlers
            if h.middleware or h.plan.wants_context
        }
        self._body = {id(h): _event_body(h) for h in handlers}
        self._routes: dict[tuple[str, str], list[tuple[Handler, dict[str, str]]]] = {}
        self.source = source or Source(type(consumer).__name__)
        self.instrumentation = instrumentation
        self._deliveries: dict[int, Delivery] = {}  # by id(message), while instrumented
        self._batches = {
            id(h): BatchRunner(h, h.spec.batch, self) for h in handlers if h.spec.batch is not None
        }

    @property
    def entry(self) -> Callable[[Message], Coroutine[Any, Any, Outcome | asyncio.Future[Any]]]:
        """What the listener's scheduler calls per message: `handle`, or with an
        instrumentation `handle_observed`."""
        return self.handle if self.instrumentation is None else self.handle_observed

    async def handle(self, msg: Message) -> Outcome | asyncio.Future[Any]:
        """Run every matching handler on `msg`, then ack, nack or leave it to the broker;
        returns how it was settled, or, for a message handed to batch handlers, the task
        that settles it once its batches are done."""
        try:
            outcome = await self._outcome(msg)
        except Exception as exc:  # a failure nothing below foresaw: settle the message anyway
            fields = _log_fields(self.source, msg, None, None, msg.attempt, None, "internal_error")
            logger.exception("handling a message from %s failed", msg.topic, extra=fields)
            outcome = await self.dead_letter(msg, exc, "internal_error", None, msg.attempt)
        if type(outcome) is not Outcome:
            return outcome
        settling = self._settle(msg, outcome)
        if settling is not None:
            await settling
        return outcome

    def _settle(self, msg: Message, outcome: Outcome) -> Awaitable[None] | None:
        """Ack or nack `msg` as `outcome` says; what to await for it, if anything (a plain
        function, not a coroutine: most acks need no awaiting)."""
        if outcome is ACK or outcome is DEAD_LETTERED:
            acked = self.consumer.ack(msg)
            if acked is not None and (self._async_ack or inspect.isawaitable(acked)):
                return acked
        elif outcome is NACK:
            assert isinstance(self.consumer, SupportsNack)
            return self.consumer.nack(msg, delay=self.redelivery_delay)
        return None

    def drain_batches(self) -> None:
        """Run open batches now, without waiting for their `max_wait`: no more messages come."""
        for runner in self._batches.values():
            runner.drain()

    async def handle_observed(self, msg: Message) -> Outcome | asyncio.Future[Any]:
        """`handle`, reporting the message, its handler calls and its settling."""
        assert self.instrumentation is not None
        delivery = Delivery(msg, self.source)
        self._deliveries[id(msg)] = delivery
        self.instrumentation.message_received(delivery)
        try:
            outcome = await self.handle(msg)
        except BaseException as exc:
            self.report_unsettled(msg, exc)
            raise
        if type(outcome) is Outcome:  # else its batches report it when they settle it
            self._report_settled(msg, outcome)
        return outcome

    def _report_settled(self, msg: Message, outcome: Outcome) -> None:
        delivery = self._deliveries.pop(id(msg), None)
        if delivery is not None:
            delivery.outcome = _SETTLED_AS[outcome]
            self.instrumentation.message_settled(delivery)  # type: ignore[union-attr]

    def report_unsettled(self, msg: Message, error: BaseException) -> None:
        """Tell the instrumentation (if any) that `msg` is left to the broker: the listener
        stopped while handling it, or settling it failed."""
        delivery = self._deliveries.pop(id(msg), None)
        if delivery is not None:
            delivery.outcome = "unsettled"
            delivery.reason = "stopped" if isinstance(error, asyncio.CancelledError) else "failed"
            self.instrumentation.message_settled(delivery)  # type: ignore[union-attr]

    async def settle_batched(
        self, settlings: Sequence[Settling], outcomes: Sequence[Outcome | None]
    ) -> None:
        """A batch handler is done with `settlings`' messages (an outcome None: handled);
        each is settled by the last of its handlers, with the strongest outcome of them all."""
        for settling, outcome in zip(settlings, outcomes, strict=True):
            if outcome is not None and (settling.outcome is None or outcome > settling.outcome):
                settling.outcome = outcome
            settling.waiting -= 1
            if settling.waiting:
                continue
            msg, final = settling.message, settling.outcome or ACK
            try:
                settled = self._settle(msg, final)
                if settled is not None:
                    await settled
            except Exception as exc:
                logger.exception(
                    "settling a message from %s failed; the broker will redeliver it",
                    msg.topic,
                    extra={"topic": msg.topic, "attempt": msg.attempt, "outcome": "unsettled"},
                )
                self.report_unsettled(msg, exc)
                continue
            if self.instrumentation is not None:
                self._report_settled(msg, final)

    def _outcome(self, msg: Message) -> Awaitable[Outcome | asyncio.Future[Any]]:
        """The coroutine that handles `msg` and says how to settle it."""
        if self.max_deliveries is not None and msg.attempt > self.max_deliveries:
            error = RuntimeError(f"delivered {msg.attempt} times, more than {self.max_deliveries}")
            return self.dead_letter(msg, error, "too_many_deliveries", None, msg.attempt)
        limit = self.max_message_bytes
        if limit is not None and len(msg.payload) > limit:
            too_large = ValueError(
                f"payload of {len(msg.payload)} bytes is larger than max_message_bytes={limit}"
            )
            return self.dead_letter(msg, too_large, "too_large", None, msg.attempt)
        try:
            envelope = self.serializer.loads(msg.payload)
        except Exception as exc:  # DecodeError, or what a parser raises on hostile input
            return self.dead_letter(msg, exc, "undecodable", None, 1)
        matched = self._route(msg.topic, envelope.type)
        if not matched:
            return self._unmatched(msg, envelope)
        if self._batches and any(id(h) in self._batches for h, _ in matched):
            return hand_to_batches(self, self._batches, msg, envelope, matched)
        if len(matched) == 1:
            handler, segments = matched[0]
            return self.run_handler(handler, msg, envelope, segments)
        return self._run_all(matched, msg, envelope)

    async def _run_all(
        self, matched: list[tuple[Handler, dict[str, str]]], msg: Message, envelope: Envelope
    ) -> Outcome:
        outcomes = await asyncio.gather(
            *(self.run_handler(h, msg, envelope, s) for h, s in matched)
        )
        return max(outcomes)

    def _route(self, topic: str, event_type: str) -> list[tuple[Handler, dict[str, str]]]:
        """The handlers taking `event_type` on `topic`, with the topic's segments; cached."""
        key = (topic, event_type)
        found = self._routes.get(key)
        if found is None:
            found = [
                (h, segments)
                for h in self.handlers
                if h.accepts(event_type) and (segments := h.pattern.match(topic)) is not None
            ]
            if len(event_type) <= _CACHED_TYPE_LENGTH:  # hostile types must not fill memory
                if len(self._routes) >= _ROUTE_CACHE_SIZE:
                    self._routes.clear()
                self._routes[key] = found
        return found

    def run_handler(
        self, handler: Handler, msg: Message, envelope: Envelope, segments: dict[str, str]
    ) -> Awaitable[Outcome]:
        """Run `handler` on `msg`, again while its retry policy says so; the outcome says
        how to settle `msg`."""
        if self.instrumentation is None and id(handler) not in self._chains:
            return self._run_plain(handler, msg, envelope, segments)
        return self._run_attempts(handler, msg, envelope, segments, None)

    async def _run_plain(
        self, handler: Handler, msg: Message, envelope: Envelope, segments: dict[str, str]
    ) -> Outcome:
        """The first attempt of a handler without middleware, uninstrumented: the common
        case, in a coroutine small enough to cost less per message (about 0.1 us on the
        compiled build). If it fails, `_run_attempts` takes over from there."""
        try:
            result = await run_on(handler.plan, envelope, msg, segments)
            if msg.headers:  # a request names where its reply goes in a header
                await self.replier.answer(msg, handler.name, result)
        except Exception as exc:
            return await self._run_attempts(handler, msg, envelope, segments, exc)
        return ACK

    async def _run_attempts(
        self,
        handler: Handler,
        msg: Message,
        envelope: Envelope,
        segments: dict[str, str],
        failed: Exception | None,
    ) -> Outcome:
        """Attempts of `handler` on `msg` until one succeeds or its retry policy gives
        up; `failed` is the error of a first attempt made already, if any."""
        chain = self._chains.get(id(handler))  # None: no middleware, no Context to build
        call = None if self.instrumentation is None else self.handler_call(handler, msg, envelope)
        attempt = 1
        while True:
            if failed is None:
                if call is not None:
                    self.call_started(call, attempt)
                try:
                    if chain is None:
                        result = await run_on(handler.plan, envelope, msg, segments)
                    else:
                        scope = Scope(envelope, msg, segments)
                        event = scope.event(self._body[id(handler)])
                        result = await chain(Context(event, scope, handler, attempt))
                    if call is not None:
                        self.call_finished(call, None)
                    if msg.headers:  # a request names where its reply goes in a header
                        await self.replier.answer(msg, handler.name, result)
                    return ACK
                except Exception as exc:
                    if call is not None:
                        self.call_finished(call, exc)
                    failed = exc
                except BaseException as stopped:  # cancelled: the listener is stopping
                    if call is not None:
                        self.call_finished(call, stopped)
                    raise
            if isinstance(failed, InvalidEvent):
                return await self.dead_letter(msg, failed, "invalid", handler, attempt, envelope)
            fields = _log_fields(self.source, msg, envelope, handler, attempt)
            policy = handler.spec.retry
            if not policy.should_retry(failed, attempt):
                logger.warning(
                    "handler %s failed on %s (attempt %d): %r",
                    handler.name,
                    msg.topic,
                    attempt,
                    failed,
                    extra=fields,
                )
                return await self.dead_letter(
                    msg, failed, "handler_failed", handler, attempt, envelope
                )
            delay = policy.delay(attempt)
            logger.info(
                "handler %s failed (%r); retry %d in %.2fs",
                handler.name,
                failed,
                attempt,
                delay,
                extra=fields,
            )
            if call is not None:
                self.instrumentation.retry_scheduled(call, delay)  # type: ignore[union-attr]
            await asyncio.sleep(delay)
            attempt += 1
            failed = None

    def handler_call(self, handler: Handler, msg: Message, envelope: Envelope) -> HandlerCall:
        """What the instrumentation hears of `handler`'s attempts on `msg`."""
        delivery = self._deliveries[id(msg)]
        delivery.event_type, delivery.event_id = envelope.type, envelope.id
        pattern = handler.pattern.text
        if delivery.pattern is None:
            delivery.pattern = pattern
        return HandlerCall(delivery, handler.name, pattern, 1, {})

    def call_started(self, call: HandlerCall, attempt: int) -> None:
        call.attempt, call.error = attempt, None
        call.started_at = time.perf_counter()
        self.instrumentation.handler_started(call)  # type: ignore[union-attr]

    def call_finished(self, call: HandlerCall, error: BaseException | None) -> None:
        call.duration, call.error = time.perf_counter() - call.started_at, error
        self.instrumentation.handler_finished(call)  # type: ignore[union-attr]

    def _note(
        self,
        msg: Message,
        reason: str,
        handler: Handler | None,
        envelope: Envelope | None,
        error: BaseException | None = None,
    ) -> None:
        """Tell the instrumented delivery of `msg` why it is settled as it is."""
        delivery = self._deliveries.get(id(msg))
        if delivery is None:
            return
        delivery.reason, delivery.error = reason, error
        if handler is not None:
            delivery.pattern = handler.pattern.text
        if envelope is not None:
            delivery.event_type, delivery.event_id = envelope.type, envelope.id

    async def _unmatched(self, msg: Message, envelope: Envelope) -> Outcome:
        if self.on_unmatched == "ack":
            if self.instrumentation is not None:
                self._note(msg, "unmatched", None, envelope)
            logger.info(
                "no handler for event type %.200r on %s; acked",
                envelope.type,
                msg.topic,
                extra=_log_fields(self.source, msg, envelope, None, 1, "ack", "unmatched"),
            )
            return ACK
        error = LookupError(
            f"no handler for event type {envelope.type[:200]!r} on topic {msg.topic!r}"
        )
        return await self.dead_letter(msg, error, "unmatched", None, 1, envelope)

    async def dead_letter(
        self,
        msg: Message,
        error: BaseException,
        reason: Reason,
        handler: Handler | None,
        attempts: int,
        envelope: Envelope | None = None,
    ) -> Outcome:
        """`_give_up_on`, then, unless `msg` comes back, an error reply if it is a request."""
        outcome = await self._give_up_on(msg, error, reason, handler, attempts, envelope)
        if msg.headers and outcome is not NACK:
            name = handler.name if handler is not None else None
            await self.replier.refuse(msg, error, reason, name, attempts)
        return outcome

    async def _give_up_on(
        self,
        msg: Message,
        error: BaseException,
        reason: Reason,
        handler: Handler | None,
        attempts: int,
        envelope: Envelope | None = None,
    ) -> Outcome:
        """Send `msg` where failed messages go; the outcome says how to settle it.

        Without a dead-letter destination a consumer that can nack gets the message
        back, but only when another try may succeed: after a handler failure or a
        failed dead-letter publish, not for a payload that can never decode.
        """
        if self.instrumentation is not None:
            self._note(msg, reason, handler, envelope, error)
        fields = _log_fields(self.source, msg, envelope, handler, attempts, reason=reason)
        if self.native_dead_letter:
            assert isinstance(self.consumer, SupportsDeadLetter)
            await self.consumer.dead_letter(
                msg, f"{reason}: {type(error).__name__}: {error_text(error)}"
            )
            return SETTLED
        template = self.dead_letter_topic
        if handler is not None and handler.spec.dead_letter_topic is not DEFAULT:
            template = handler.spec.dead_letter_topic
        letter = DeadLetter.of(
            msg,
            error,
            reason=reason,
            handler=handler.name if handler else None,
            attempts=attempts,
            keep=KEPT_PAYLOAD_BYTES if reason == "too_large" else None,
        )
        # Only a handler failure, or a dead letter that could not be sent, may go better on
        # another delivery; past max_deliveries nothing does.
        retryable = reason == "handler_failed"
        if template is not None and self.producer is not None:
            topic = template.format(topic=msg.topic)
            if await self._publish(topic, letter, fields):
                fields["outcome"] = "dead_letter"
                logger.warning(
                    "dead-lettered a message from %s to %s (%s)",
                    msg.topic,
                    topic,
                    reason,
                    extra=fields,
                )
                return DEAD_LETTERED
            retryable = reason != "too_many_deliveries"
        if retryable and isinstance(self.consumer, SupportsNack):
            return NACK
        fields["outcome"] = "ack"
        if (letter.payload_size or 0) > KEPT_PAYLOAD_BYTES:
            letter = letter.reduced("too large to log")
        logger.error(
            "message from %s could not be handled or dead-lettered; "
            "acking it to keep the stream moving. Dead letter: %s",
            msg.topic,
            letter.model_dump_json(),
            extra=fields,
        )
        return ACK

    async def _publish(self, topic: str, letter: DeadLetter, fields: dict[str, Any]) -> bool:
        """Send `letter` to `topic`; when the serializer or the broker refuses it, send it
        reduced to what any takes. False when neither went out."""
        assert self.producer is not None
        send = publisher(self.producer)
        try:
            await send(OutgoingMessage(topic, self.serializer.dumps(letter.envelope())))
            return True
        except Exception as exc:
            why = f"the full dead letter could not be sent: {type(exc).__name__}: {exc}"
        try:
            reduced = letter.reduced(why)
            await send(OutgoingMessage(topic, self.serializer.dumps(reduced.envelope())))
        except Exception:
            logger.exception("could not publish a dead letter to %s (%s)", topic, why, extra=fields)
            return False
        logger.warning("sent a reduced dead letter to %s (%s)", topic, why, extra=fields)
        return True


def _log_fields(
    source: Source,
    msg: Message,
    envelope: Envelope | None,
    handler: Handler | None,
    attempt: int,
    outcome: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The context of a log line about `msg`, as `extra` fields of its record."""
    return {
        "topic": msg.topic,
        "event_type": envelope.type if envelope is not None else None,
        "event_id": envelope.id if envelope is not None else None,
        "handler": handler.name if handler is not None else None,
        "attempt": attempt,
        "group": source.group,
        "backend": source.backend,
        "outcome": outcome,
        "reason": reason,
    }


def _endpoint(handler: Handler) -> Callable[[Context], Awaitable[Any]]:
    """The innermost link of `handler`'s middleware chain: the handler call."""
    plan = handler.plan

    def call_handler(ctx: Context) -> Awaitable[Any]:
        return run(plan, ctx.scope)

    return call_handler


def _event_body(handler: Handler) -> Any:
    for source in handler.plan.params.values():
        if isinstance(source, EventParam):
            return source.body
    return None

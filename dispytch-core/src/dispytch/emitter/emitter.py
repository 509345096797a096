"""`EventEmitter`: turns typed events into messages and hands them to a producer."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from typing_extensions import Self

from dispytch.backends.backend import Backend
from dispytch.backends.requirements import CapabilityError
from dispytch.backends.selection import select_backend, settings_from_config
from dispytch.emitter.producer import (
    OutgoingMessage,
    Producer,
    ProducerTimeout,
    SupportsEnqueue,
    SupportsPublish,
    publisher,
)
from dispytch.emitter.request_reply import (
    ReplyConsumerFactory,
    ReplyInbox,
    RequestTimeout,
    backend_reply_consumers,
    replies_topic,
    reply_value,
)
from dispytch.event import EventBase
from dispytch.instrumentation import (
    Emission,
    Instrumentation,
    Source,
    check_instrumentation,
    combine,
)
from dispytch.lifecycle import start_if_possible, stop_if_possible
from dispytch.middleware import Chain, EmitContext, Middleware
from dispytch.reply import CORRELATION_ID, REPLY_TO
from dispytch.serialization import Envelope, JSONSerializer, Serializer

logger = logging.getLogger("dispytch.emitter")

TimeoutCallback = Callable[[EventBase], Awaitable[None] | None]
C = TypeVar("C", bound=TimeoutCallback)
R = TypeVar("R")


class EventEmitter:
    """Emits `EventBase` instances through a `Producer`.

    Emits run concurrently (a batching producer batches them); `emit_many` hands a
    whole burst over at once. A `ProducerTimeout` goes to the `on_timeout` callback,
    or is raised when `raise_on_timeout=True` or no callback is set. `middleware`
    runs around every send and may add headers. `request` emits an event and waits for
    the reply its handler returns.
    """

    def __init__(
        self,
        producer: Producer,
        *,
        serializer: Serializer | None = None,
        middleware: Sequence[Middleware[EmitContext]] = (),
        raise_on_timeout: bool = False,
    ) -> None:
        self.serializer: Serializer = serializer or JSONSerializer()
        self.raise_on_timeout = raise_on_timeout
        self.backend: Backend | None = None
        self.backend_settings: Any = None
        self._timeout_callback: TimeoutCallback | None = None
        self._chain = (
            Chain.build(list(middleware), self._past_middleware).run if middleware else None
        )
        self.instrumentation: list[Instrumentation] = []
        self._observer: Instrumentation | None = None
        self.use_producer(producer)
        self.reply_consumers: ReplyConsumerFactory | None = None
        """Makes the consumer of the replies topic (see `receive_replies_with`)."""
        self._inbox: asyncio.Task[ReplyInbox] | None = None

    @classmethod
    def from_backend(
        cls, name: str, *, emitter_options: Mapping[str, Any] | None = None, **settings: Any
    ) -> Self:
        """An emitter on the backend registered as `name`, with validated `settings`."""
        return cls._on(*select_backend(name, settings), emitter_options)

    @classmethod
    def from_url(cls, url: str, *, emitter_options: Mapping[str, Any] | None = None) -> Self:
        """An emitter on the backend named by the URL's scheme."""
        return cls._on(*select_backend(url), emitter_options)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, emitter_options: Mapping[str, Any] | None = None
    ) -> Self:
        """An emitter from a mapping such as `os.environ`; see `dispytch.backends.selection`."""
        spec, settings, _ = settings_from_config(config)
        return cls._on(*select_backend(spec, settings), emitter_options)

    @classmethod
    def _on(cls, backend: Backend, settings: Any, options: Mapping[str, Any] | None) -> Self:
        emitter = cls(backend.create_producer(settings), **(options or {}))
        emitter.backend = backend
        emitter.backend_settings = settings
        return emitter

    def use_producer(self, producer: Producer) -> None:
        """Send through `producer` from now on (the test client swaps in an in-memory one)."""
        self.producer = producer
        self._publish = publisher(producer)
        self._enqueue = producer.enqueue if isinstance(producer, SupportsEnqueue) else None
        publishes = isinstance(producer, SupportsPublish)
        self._carries_headers = self._enqueue is not None or publishes
        self._enqueues_each = self._enqueue is not None and not publishes
        """Whether a single emit goes through `enqueue` too: a producer that has `publish`
        sends it from the emitting task, with no hand-off; `emit_many` enqueues anyway."""
        self._warned_headers = False
        self._direct = self._direct_publishing()

    def _direct_publishing(self) -> bool:
        """Whether `emit` can call the producer straight away: no instrumentation, no
        middleware, no enqueue (see `_hand_over`). Decided again whenever they change."""
        return self._observer is None and self._chain is None and not self._enqueues_each

    def receive_replies_with(self, consumers: ReplyConsumerFactory | None) -> None:
        """Receive replies to `request()` through the consumer `consumers(topic)` makes for
        the emitter's replies topic (None: as the backend says), from the next start of
        replies on. An emitter made from a backend needs none; one given a producer does."""
        self.reply_consumers = consumers

    def add_instrumentation(self, instrumentation: Instrumentation) -> None:
        """Report every emit to `instrumentation` (tracing, metrics; see
        `dispytch.instrumentation`); it may add headers, such as a trace context."""
        self.instrumentation.append(check_instrumentation(instrumentation))
        self._observer = combine(self.instrumentation)
        self._direct = self._direct_publishing()

    def remove_instrumentation(self, instrumentation: Instrumentation) -> None:
        """Stop reporting emits to `instrumentation`."""
        self.instrumentation.remove(instrumentation)
        self._observer = combine(self.instrumentation)
        self._direct = self._direct_publishing()

    @property
    def source(self) -> Source:
        """The backend's name (never its URL), for instrumentation."""
        return Source(self.backend.name if self.backend else type(self.producer).__name__)

    def on_timeout(self, callback: C) -> C:
        """Register `callback(event)` (sync or async) for sends that time out; a decorator."""
        self._timeout_callback = callback
        return callback

    async def emit(self, event: EventBase) -> None:
        """Serialize `event` and send it to the topic formatted from its fields."""
        message = self._message(event)
        try:
            if self._direct:
                await self._publish(message)
            else:
                await self._hand_over(event, message)
        except ProducerTimeout:
            if not await self._timeout_handled(event, message.topic):
                raise

    async def request(self, event: EventBase, *, reply: type[R], timeout: float = 10.0) -> R:
        """Emit `event` as a request and return the reply its handler returns, as a `reply`.

        The handler's return value comes back through the emitter's replies topic, read by
        one consumer for all its requests (started by the first request; `stop()` ends
        it). `RequestFailed` says why there is no answer: the handler failed after its
        retries, the event did not validate, no handler took it, the reply is not a
        `reply`. `RequestTimeout` after `timeout` seconds without a reply; a reply coming
        later is dropped and logged. `CapabilityError` when the backend cannot carry the
        headers a request needs.
        """
        inbox = await self._reply_inbox()
        message = self._message(event)
        message.headers[REPLY_TO] = inbox.topic
        message.headers[CORRELATION_ID] = event.id
        what = f"request {event.event_type()} {event.id} to {message.topic}"
        waiting = inbox.expect(event.id)
        try:
            envelope = await asyncio.wait_for(self._round_trip(event, message, waiting), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(
                f"no reply to {what} within {timeout}s; is a listener handling it? "
                "A reply arriving later is dropped",
                request_id=event.id,
            ) from None
        finally:
            inbox.forget(event.id)
        value: R = reply_value(envelope, reply, event.id, what)
        return value

    @property
    def replies_topic(self) -> str | None:
        """The topic replies to this emitter's requests are sent to, while it reads them."""
        inbox = self._inbox
        if inbox is None or not inbox.done() or inbox.exception() is not None:
            return None
        return inbox.result().topic

    async def _round_trip(
        self, event: EventBase, message: OutgoingMessage, waiting: asyncio.Future[Any]
    ) -> Any:
        await self._hand_over(event, message)
        return await waiting

    async def _reply_inbox(self) -> ReplyInbox:
        """The emitter's running reply inbox, started by the first request to ask for it."""
        starting = self._inbox
        if starting is None or (starting.done() and not _running(starting)):
            starting = self._inbox = asyncio.ensure_future(self._start_inbox())
        return await asyncio.shield(starting)

    async def _start_inbox(self) -> ReplyInbox:
        consumers = self.reply_consumers
        if consumers is None and self.backend is not None:
            consumers = backend_reply_consumers(self.backend, self.backend_settings)
        if consumers is None:
            raise TypeError(
                "request() needs to know where replies come from: make the emitter from a "
                "backend (EventEmitter.from_url(...)), or call "
                "emitter.receive_replies_with(lambda topic: <a consumer of topic>)"
            )
        if not self._carries_headers:
            raise CapabilityError(
                f"request() needs headers, and {type(self.producer).__name__} cannot carry "
                "them (it has no publish() or enqueue()): a request carries its reply "
                "destination and correlation id in headers"
            )
        topic = replies_topic()
        inbox = ReplyInbox(consumers(topic), topic, self.serializer)
        await inbox.start()
        return inbox

    async def stop_replies(self) -> None:
        """Stop reading replies; requests still waiting fail with `RequestFailed`. The next
        request starts again, on a new replies topic."""
        starting, self._inbox = self._inbox, None
        if starting is None:
            return
        try:
            inbox = await starting
        except Exception:
            return  # it never started
        await inbox.stop()

    async def emit_many(self, events: Iterable[EventBase]) -> None:
        """Emit `events`, handed to the producer in iteration order, and wait for them all.

        Every event is serialized before the first is sent. A producer that can `enqueue`
        (without emitter middleware) gets the whole burst at once, with no task per event;
        otherwise the events are emitted concurrently, as `gather` over `emit` would.
        Each event is settled as `emit` settles it: a `ProducerTimeout` goes to the
        `on_timeout` callback. Once all have settled, the first failure is raised and any
        others are logged. If the call is cancelled, events already handed to the
        producer may still be delivered.
        """
        events = list(events)
        if self._enqueue is not None:
            await self.start()  # so that every event takes the fast path, in order
        handed = self._hand_over_all(events)
        if self._chain is None and self._enqueue is not None:
            outcomes = await _in_order(handed)
        else:
            outcomes = await asyncio.gather(*handed, return_exceptions=True)
        failures: list[tuple[EventBase, BaseException]] = []
        for event, outcome in zip(events, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                continue
            if isinstance(outcome, ProducerTimeout):
                try:
                    if await self._timeout_handled(event, event.topic()):
                        continue
                except Exception as exc:  # the callback failed
                    outcome = exc
            failures.append((event, outcome))
        if failures:
            for event, error in failures[1:]:
                logger.error(
                    "emit of %s to %s failed",
                    event.event_type(),
                    event.topic(),
                    exc_info=error,
                    extra=self._log_fields(event, event.topic(), "failed"),
                )
            raise failures[0][1]

    def _message(self, event: EventBase) -> OutgoingMessage:
        """`event` in its envelope, serialized, with its topic and backend config."""
        envelope = Envelope(
            event.id,
            event.event_type(),
            event.model_dump(mode="json", by_alias=True),
            int(time.time() * 1000),
        )
        config = event.backend_config()
        return OutgoingMessage(
            event.topic(),
            self.serializer.dumps(envelope),
            None if config is None else _config(event, config),
        )

    def _hand_over_all(self, events: list[EventBase]) -> list[Awaitable[Any]]:
        """Serialize all `events`, then hand them over in order; what to await for each."""
        messages = [self._message(event) for event in events]
        handed: list[Awaitable[Any]] = []
        for event, message in zip(events, messages, strict=True):
            try:
                handed.append(self._hand_over(event, message, queued=True))
            except Exception as exc:  # e.g. a config the backend refuses, raised by enqueue
                handed.append(_failed(exc))
        return handed

    def _hand_over(
        self, event: EventBase, message: OutgoingMessage, *, queued: bool = False
    ) -> Awaitable[Any]:
        """Pass `message` through middleware (if any) to the producer; what to await.
        `queued`: part of a burst, enqueued when the producer can (see `_produce`)."""
        if self._observer is not None:
            return self._hand_over_observed(event, message, self._observer, queued)
        if self._chain is not None:
            return self._chain(EmitContext(event, message))
        return self._produce(message, queued)

    def _hand_over_observed(
        self,
        event: EventBase,
        message: OutgoingMessage,
        observer: Instrumentation,
        queued: bool,
    ) -> Awaitable[Any]:
        """`_hand_over`, reporting the emit to `observer`. The producer is called now, in
        order, as without instrumentation; the result reports how it ended."""
        emission = Emission(event, message, self.source, time.perf_counter())
        observer.emit_started(emission)
        try:
            if self._chain is not None:
                handed = self._chain(EmitContext(event, message))
            else:
                handed = self._produce(message, queued)
        except Exception as exc:
            _emit_ended(observer, emission, exc)
            raise
        return _observed(handed, observer, emission)

    def _produce(self, message: OutgoingMessage, queued: bool = False) -> Awaitable[None]:
        """Give `message` to the producer: enqueued when it can be and the message is part
        of a burst (`queued`) or the producer cannot `publish`; else published."""
        if self._enqueue is None or not (queued or self._enqueues_each):
            return self._publish(message)
        try:
            return self._enqueue(message)
        except RuntimeError:  # not started yet, or stopped by someone else (a listener)
            return self._start_and_enqueue(message)

    async def _start_and_enqueue(self, message: OutgoingMessage) -> None:
        assert self._enqueue is not None
        await self.start()
        await self._enqueue(message)

    async def _timeout_handled(self, event: EventBase, topic: str) -> bool:
        """Give a timed-out emit to the `on_timeout` callback; False if it is to be raised."""
        if self.raise_on_timeout or self._timeout_callback is None:
            return False
        logger.warning(
            "emit of %s to %s timed out",
            event.event_type(),
            topic,
            extra=self._log_fields(event, topic, "timed_out"),
        )
        result = self._timeout_callback(event)
        if inspect.isawaitable(result):
            await result
        return True

    def _log_fields(self, event: EventBase, topic: str, outcome: str) -> dict[str, Any]:
        """The context of a log line about emitting `event`, as `extra` fields."""
        return {
            "topic": topic,
            "event_type": event.event_type(),
            "event_id": event.id,
            "backend": self.source.backend,
            "outcome": outcome,
        }

    def _past_middleware(self, ctx: EmitContext) -> Awaitable[None]:
        return self._deliver(ctx.message)

    async def _deliver(self, message: OutgoingMessage) -> None:
        """Hand an encoded message to the producer, bypassing middleware."""
        if message.headers and not self._carries_headers and not self._warned_headers:
            self._warned_headers = True
            logger.warning(
                "%s cannot carry headers; headers set by emitter middleware are dropped",
                type(self.producer).__name__,
            )
        await self._produce(message)

    async def start(self) -> None:
        await start_if_possible(self.producer)

    async def stop(self) -> None:
        await self.stop_replies()
        await stop_if_possible(self.producer)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _running(starting: asyncio.Task[ReplyInbox]) -> bool:
    """Whether the inbox `starting` made is still reading replies."""
    return starting.exception() is None and starting.result().running


async def _in_order(awaitables: list[Awaitable[Any]]) -> list[Any]:
    """Await each of `awaitables` in turn: its result, or what it raised.

    A producer confirms enqueued messages in order, a batch at a time, so this task is
    woken about once per batch, with no callback or task per message as `gather` has.
    """
    outcomes: list[Any] = []
    for awaitable in awaitables:
        try:
            outcomes.append(await awaitable)
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


async def _observed(handed: Awaitable[Any], observer: Instrumentation, emission: Emission) -> Any:
    """Await `handed`, then tell `observer` how the emit of `emission` ended."""
    try:
        result = await handed
    except BaseException as exc:
        _emit_ended(observer, emission, exc)
        raise
    _emit_ended(observer, emission, None)
    return result


def _emit_ended(observer: Instrumentation, emission: Emission, error: BaseException | None) -> None:
    emission.duration = time.perf_counter() - emission.started_at
    if error is None:
        observer.event_emitted(emission)
    else:
        observer.emit_failed(emission, error)


def _failed(exc: Exception) -> asyncio.Future[None]:
    """A future that failed with `exc` already."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


def _config(event: EventBase, config: BaseModel) -> BaseModel:
    """The event's backend `config`; a config with `render(fields)` gets the event's fields."""
    render = getattr(config, "render", None)
    if callable(render):
        rendered: BaseModel = render(
            {name: getattr(event, name) for name in type(event).model_fields}
        )
        return rendered
    return config

"""`EventListener`: pulls messages from a consumer and runs handlers on them, with bounded
concurrency, per-key ordering and a graceful stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any, TypeVar

from typing_extensions import Self

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.requirements import ListenerNeeds, check_requirements
from dispytch.backends.selection import select_backend, settings_from_config
from dispytch.dead_letter import check_topic_template
from dispytch.di.app_scope import enter_app_scoped
from dispytch.di.plan import Call, Overrides, app_scoped_calls
from dispytch.emitter.producer import Producer
from dispytch.health import ListenerHealth, reachable
from dispytch.instrumentation import (
    Instrumentation,
    ReportsReconnects,
    Source,
    check_instrumentation,
    combine,
)
from dispytch.lifecycle import start_if_possible, stop_if_possible
from dispytch.listener.batch import Batch
from dispytch.listener.consumer import Consumer
from dispytch.listener.dispatch import Dispatcher, UnmatchedPolicy
from dispytch.listener.group import HandlerGroup
from dispytch.listener.handler import DEFAULT, Handler
from dispytch.listener.scheduler import Scheduler
from dispytch.middleware import Context, Middleware
from dispytch.retry import RetryPolicy
from dispytch.serialization import JSONSerializer, Serializer

logger = logging.getLogger("dispytch.listener")

F = TypeVar("F", bound=Callable[..., Any])

_RECANCEL_AFTER = 0.1
"""Seconds `stop()` waits before cancelling a pull that ignored its cancellation."""


class EventListener:
    """Runs handlers on events from a consumer.

    Give it a `Consumer` (and a `Producer` for dead letters and replies), or build it from a
    backend with `from_backend`/`from_url`/`from_config`, which subscribes to the
    topics its handlers listen to.

    - At most `max_in_flight` messages are handled at once; past that the listener
      stops pulling. Messages sharing a key are handled in order unless
      `ordered=False`.
    - A failed message is published to `dead_letter_topic` (a template with
      `{topic}`; None disables), or nacked when there is none, then settled.
    - `on_unmatched` says what happens to events no handler takes: "ack" or
      "dead_letter".
    - A message delivered more than `max_deliveries` times (default 10, where the
      backend counts deliveries; None: no limit) is dead-lettered as
      `too_many_deliveries`; a payload larger than `max_message_bytes` (default: no
      limit) is dead-lettered as `too_large` before it is decoded.
    """

    def __init__(
        self,
        consumer: Consumer | None = None,
        *,
        producer: Producer | None = None,
        serializer: Serializer | None = None,
        middleware: Sequence[Middleware[Context]] = (),
        dead_letter_topic: str | None = "{topic}.dlq",
        native_dead_letter: bool = False,
        on_unmatched: UnmatchedPolicy = "ack",
        max_in_flight: int = 256,
        ordered: bool = True,
        topic_delimiter: str = ".",
        max_deliveries: int | None = 10,
        redelivery_delay: float = 1.0,
        max_message_bytes: int | None = None,
        requires: Iterable[str] = (),
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if on_unmatched not in ("ack", "dead_letter"):
            raise ValueError(f"on_unmatched is 'ack' or 'dead_letter', got {on_unmatched!r}")
        if max_deliveries is not None and max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1 or None, got {max_deliveries}")
        if max_message_bytes is not None and max_message_bytes < 1:
            raise ValueError(
                f"max_message_bytes must be at least 1 or None, got {max_message_bytes}"
            )
        if dead_letter_topic is not None:
            check_topic_template(dead_letter_topic)
        self.consumer = consumer
        self.producer = producer
        self.serializer: Serializer = serializer or JSONSerializer()
        self.middleware = list(middleware)
        self.dead_letter_topic = dead_letter_topic
        self.native_dead_letter = native_dead_letter
        self.on_unmatched: UnmatchedPolicy = on_unmatched
        self.max_in_flight = max_in_flight
        self.ordered = ordered
        self.topic_delimiter = topic_delimiter
        self.max_deliveries = max_deliveries
        self.redelivery_delay = redelivery_delay
        self.max_message_bytes = max_message_bytes
        self.requires = frozenset(requires)
        self.handlers: list[Handler] = []
        self.backend: Backend | None = None
        self.group: str | None = None
        self.backend_settings: Any = None
        self._ready = asyncio.Event()
        self._done = asyncio.Event()
        self._pulling: asyncio.Task[None] | None = None
        self._run: asyncio.Task[None] | None = None
        self._crash: BaseException | None = None
        self._stop_timeout = 30.0
        self._stopping = False
        self._running = False
        self._scheduler: Scheduler | None = None
        self._waiting_for_room_since: float | None = None
        self.instrumentation: list[Instrumentation] = []
        self._observer: Instrumentation | None = None  # while the consumer runs, if attached
        self._own_app_scope = AsyncExitStack()
        self._app_values: Mapping[Callable[..., Any], Any] | None = None
        self._app_overrides: Overrides = {}
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        """`{original: replacement}`: dependencies (nested ones too) to call instead,
        from the next start on; for tests and local runs."""

    # -- construction from a backend -------------------------------------------------------

    @classmethod
    def from_backend(
        cls,
        name: str,
        *,
        group: str,
        listener_options: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> Self:
        """A listener on the backend registered as `name` (or a URL), in consumer group `group`.

        `settings` are checked against the backend's settings model; `listener_options`
        are passed to the constructor.
        """
        return cls(**(listener_options or {})).use_backend(name, group=group, **settings)

    @classmethod
    def from_url(
        cls, url: str, *, group: str, listener_options: Mapping[str, Any] | None = None
    ) -> Self:
        """A listener on the backend named by the URL's scheme (`kafka://host:9092`, `memory://`)."""
        return cls.from_backend(url, group=group, listener_options=listener_options)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        group: str | None = None,
        listener_options: Mapping[str, Any] | None = None,
    ) -> Self:
        """A listener from a mapping such as `os.environ`; see `dispytch.backends.selection`."""
        spec, settings, configured_group = settings_from_config(config)
        chosen = group or configured_group
        if chosen is None:
            raise ValueError("no consumer group: pass group=... or set DISPYTCH_GROUP")
        return cls.from_backend(spec, group=chosen, listener_options=listener_options, **settings)

    def use_backend(self, spec: str, *, group: str, **settings: Any) -> Self:
        """Consume from the backend named by `spec` (a name or URL) in consumer group `group`.

        The consumer is created when listening starts, subscribed to the handlers' topics.
        """
        self._require_idle("change backend")
        if self.consumer is not None:
            raise TypeError("this listener was given a consumer; it cannot also use a backend")
        if not group:
            raise ValueError("a listener needs a non-empty consumer group")
        self.backend, self.backend_settings = select_backend(spec, settings)
        self.group = group
        return self

    # -- registration ----------------------------------------------------------------------

    def handler(
        self,
        *,
        topic: str,
        event: str,
        retries: int = 0,
        retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
        retry_interval: float = 1.25,
        retry: RetryPolicy | None = None,
        middleware: Sequence[Middleware[Context]] = (),
        dead_letter_topic: str | Any | None = DEFAULT,
        batch: Batch | None = None,
    ) -> Callable[[F], F]:
        """Register an async handler for `event` (or "*" for any) on the topic pattern `topic`.

        With `batch=Batch(max_size=..., max_wait=...)` the handler takes a
        `list[Event[Body]]` and is called with up to `max_size` events of one ordering key
        at a time (see `dispytch.listener.batch`).
        """
        group = HandlerGroup()

        def register(func: F) -> F:
            group.handler(
                topic=topic,
                event=event,
                retries=retries,
                retry_on=retry_on,
                retry_interval=retry_interval,
                retry=retry,
                middleware=middleware,
                dead_letter_topic=dead_letter_topic,
                batch=batch,
            )(func)
            self.add_handler_group(group)
            return func

        return register

    def add_handler_group(self, group: HandlerGroup) -> None:
        """Add every handler of `group`, wrapped in the group's middleware."""
        self._require_idle("add handlers")
        for spec in group.specs:
            if spec.batch is not None and spec.batch.max_size > self.max_in_flight:
                raise ValueError(
                    f"batch handler {spec.func.__qualname__} collects up to "
                    f"{spec.batch.max_size} events, but this listener holds at most "
                    f"max_in_flight={self.max_in_flight} messages, so its batches could never "
                    "fill: raise max_in_flight (EventListener(max_in_flight=...)) or lower "
                    "Batch(max_size=...)"
                )
        self.handlers.extend(
            spec.bind(self.topic_delimiter, group.middleware) for spec in group.specs
        )

    def add_middleware(self, middleware: Middleware[Context]) -> None:
        """Wrap every handler in `middleware`, outside group and handler middleware."""
        self._require_idle("add middleware")
        self.middleware.append(middleware)

    def add_instrumentation(self, instrumentation: Instrumentation) -> None:
        """Report received messages, handler calls and outcomes to `instrumentation`
        (tracing, metrics; see `dispytch.instrumentation`)."""
        self._require_idle("add instrumentation")
        self.instrumentation.append(check_instrumentation(instrumentation))

    def remove_instrumentation(self, instrumentation: Instrumentation) -> None:
        """Stop reporting to `instrumentation`, from the next start on."""
        self._require_idle("remove instrumentation")
        self.instrumentation.remove(instrumentation)

    @property
    def source(self) -> Source:
        """The backend's name (never its URL) and the consumer group, for instrumentation."""
        backend = self.backend.name if self.backend else type(self.consumer).__name__
        return Source(backend, self.group)

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start consuming and return once the listener is consuming.

        The producer and consumer are started (a backend consumer subscribes as it
        starts), then messages are pulled and handled in a task the listener owns until
        `stop()`. An event emitted after `start()` returned is delivered to it.
        """
        self._require_idle("start")
        consumer, producer = self._build()
        self._running = True
        self._stopping = False
        self._crash = None
        self._done = asyncio.Event()  # a fresh one: the last run may have had another loop
        self._waiting_for_room_since = None
        started: list[Any] = []
        try:
            handlers = await self._prepared_handlers()
            for part in (producer, consumer):
                await start_if_possible(part)
                started.append(part)
        except BaseException:
            await self._shut_down(started)
            raise
        if self._stopping:  # stop() was called while the consumer was starting
            await self._shut_down(started)
            return
        self._observe(consumer)
        dispatcher = self._dispatcher(consumer, producer, handlers)
        self._scheduler = scheduler = Scheduler(dispatcher.entry, self.max_in_flight)
        self._pulling = asyncio.create_task(self._pull(consumer, scheduler))
        self._run = asyncio.create_task(
            self._consume(self._pulling, scheduler, started, dispatcher.drain_batches)
        )
        self._ready.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop pulling, give in-flight handlers up to `timeout` seconds, ack what finished.

        What did not finish is not acked and comes back from the broker. If the pull
        loop crashed since `start()`, its exception is raised here (unless `listen()`
        raised it already).
        """
        self._stop_timeout = timeout
        self._stopping = True
        if self._running:
            done = asyncio.ensure_future(self._done.wait())
            try:
                while not done.done():
                    # Cancel again while pulling goes on: a client library may swallow a
                    # cancellation that races with its reply (asyncio.wait_for before 3.12 does).
                    if self._pulling is not None and not self._pulling.done():
                        self._pulling.cancel()
                    await asyncio.wait({done}, timeout=_RECANCEL_AFTER)
            finally:
                done.cancel()
        self._raise_crash()

    async def listen(self) -> None:
        """Start, then consume until `stop()` is called or the consumer runs out; then
        finish in-flight work. A crash of the pull loop is raised here; cancelling
        `listen()` stops at once, leaving in-flight messages unacked."""
        self._require_idle("listen")
        await self.start()
        run = self._run
        if run is None:
            return  # stopped while starting
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            if not run.done():
                run.cancel()
                await asyncio.wait({run})
            raise
        self._raise_crash()

    async def wait_stopped(self) -> None:
        """Wait until the listener stops consuming: after `stop()`, or on its own when its
        pull loop crashed or the consumer ran out (`stop()` then raises the crash)."""
        if self._run is not None:
            await asyncio.shield(self._run)

    async def health(
        self, *, stale_after: float = 60.0, ping_timeout: float = 2.0
    ) -> ListenerHealth:
        """Is the listener consuming, does its broker answer, when did it last poll?

        Not ready when it is not consuming (not started, stopping, or its pull loop
        ended), when its broker does not answer a ping within `ping_timeout` seconds, or
        when it has not asked its consumer for messages for `stale_after` seconds (every
        handler stuck, say).
        """
        scheduler, pulling = self._scheduler, self._pulling
        consuming = (
            self._running and not self._stopping and pulling is not None and not pulling.done()
        )
        in_flight = scheduler.in_flight if scheduler is not None else 0
        if not consuming:
            return ListenerHealth(False, False, None, None, in_flight, "not consuming")
        since = self._waiting_for_room_since
        last_poll = 0.0 if since is None else asyncio.get_running_loop().time() - since
        backend = await reachable(self.consumer, ping_timeout)
        reason = None
        if backend is False:
            reason = f"the broker did not answer a ping within {ping_timeout}s"
        elif last_poll > stale_after:
            reason = f"no poll for {last_poll:.0f}s: {in_flight} handlers have not finished"
        return ListenerHealth(reason is None, True, backend, last_poll, in_flight, reason)

    def app_scoped_dependencies(self, overrides: Overrides | None = None) -> list[Call]:
        """The app-scoped dependencies the handlers use (dependencies first), with
        `overrides` and then the listener's own `dependency_overrides` applied."""
        merged = {**(overrides or {}), **self.dependency_overrides}
        return app_scoped_calls(h.replanned(merged, None).plan for h in self.handlers)

    def provide_app_scope(
        self, values: Mapping[Callable[..., Any], Any] | None, overrides: Overrides
    ) -> None:
        """Set by an `App` before it starts the listener: the values of the app-scoped
        dependencies (None: the listener enters them itself) and the app's overrides."""
        self._require_idle("change its app scope")
        self._app_values, self._app_overrides = values, overrides

    async def wait_ready(self) -> None:
        """Wait until the consumer has started and the listener is pulling."""
        await self._ready.wait()

    @property
    def subscription(self) -> Subscription:
        """What the handlers listen to, as handed to a backend consumer."""
        patterns = tuple(dict.fromkeys(h.pattern for h in self.handlers))
        return Subscription(self.group or "", patterns)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- internals -------------------------------------------------------------------------

    def _build(self) -> tuple[Consumer, Producer | None]:
        if self.backend is None:
            if self.consumer is None:
                raise TypeError(
                    "EventListener needs a consumer, or use EventListener.from_backend(...)"
                )
            return self.consumer, self.producer
        if not self.handlers:
            raise RuntimeError(
                f"listener on backend {self.backend.name!r} has no handlers, "
                "so nothing to subscribe to"
            )
        check_requirements(self.backend, self.backend_settings, self._needs())
        self.consumer = self.backend.create_consumer(self.backend_settings, self.subscription)
        if self.producer is None:  # for dead letters and replies to requests
            self.producer = self.backend.create_producer(self.backend_settings)
        return self.consumer, self.producer

    def _dispatcher(
        self, consumer: Consumer, producer: Producer | None, handlers: list[Handler]
    ) -> Dispatcher:
        return Dispatcher(
            consumer,
            [_with_outer(h, self.middleware) for h in handlers],
            serializer=self.serializer,
            producer=producer,
            dead_letter_topic=self.dead_letter_topic,
            native_dead_letter=self.native_dead_letter,
            on_unmatched=self.on_unmatched,
            max_deliveries=self.max_deliveries,
            redelivery_delay=self.redelivery_delay,
            max_message_bytes=self.max_message_bytes,
            source=self.source,
            instrumentation=self._observer,
        )

    def _observe(self, consumer: Consumer) -> None:
        """Tell the instrumentation (if any) that `consumer` started, and when it reconnects."""
        self._observer = observer = combine(self.instrumentation)
        if observer is None:
            return
        source = self.source
        observer.consumer_started(source)
        if isinstance(consumer, ReportsReconnects):
            consumer.on_reconnect(lambda: observer.consumer_reconnected(source))

    async def _consume(
        self,
        pulling: asyncio.Task[None],
        scheduler: Scheduler,
        parts: list[Any],
        drain_batches: Callable[[], None],
    ) -> None:
        """The listener's own task: wait for the pull loop to end, finish what is in flight
        (open batches at once), stop the consumer and producer. A crash is kept for
        `stop()` or `listen()` to raise."""
        try:
            try:
                await pulling
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
            drain_batches()
            if not await scheduler.finish(self._stop_timeout):
                logger.warning(
                    "in-flight messages did not finish within %.1fs; left unacked",
                    self._stop_timeout,
                )
        except Exception as exc:
            logger.error("the listener stopped consuming: %r", exc)
            self._crash = exc
            await scheduler.cancel()
        except BaseException:
            await scheduler.cancel()
            raise
        finally:
            try:
                await self._shut_down(parts)
            except Exception as exc:
                logger.error("stopping the consumer or producer failed: %r", exc)
                self._crash = self._crash or exc

    async def _prepared_handlers(self) -> list[Handler]:
        """The handlers with overrides applied and app-scoped values injected; without an
        app, the listener enters its app-scoped dependencies itself until it stops."""
        overrides = {**self._app_overrides, **self.dependency_overrides}
        values = self._app_values
        if values is None:
            calls = self.app_scoped_dependencies(self._app_overrides)
            values = await enter_app_scoped(calls, self._own_app_scope) if calls else {}
        if not overrides and not values:
            return self.handlers
        return [h.replanned(overrides, values) for h in self.handlers]

    async def _shut_down(self, parts: list[Any]) -> None:
        try:
            try:
                for part in reversed(parts):
                    await stop_if_possible(part)
            finally:
                await self._own_app_scope.aclose()
        finally:
            self._running = False
            self._scheduler = None
            self._pulling = self._run = None
            self._ready.clear()
            if self._observer is not None:
                self._observer.consumer_stopped(self.source)
                self._observer = None
            self._done.set()

    def _raise_crash(self) -> None:
        crash, self._crash = self._crash, None
        if crash is not None:
            raise crash

    def _needs(self) -> ListenerNeeds:
        return ListenerNeeds(
            group=self.group or "",
            requires=self.requires,
            native_dead_letter=self.native_dead_letter,
            wildcard_topics=tuple(
                str(h.pattern) for h in self.handlers if not h.pattern.is_literal
            ),
            dead_letter_topic=self.dead_letter_topic is not None,
        )

    async def _pull(self, consumer: Consumer, scheduler: Scheduler) -> None:
        ordered = self.ordered
        messages = consumer.listen()
        loop = asyncio.get_running_loop()
        try:
            while True:
                if scheduler.full:  # room for a message before pulling it: backpressure
                    self._waiting_for_room_since = loop.time()
                    await scheduler.wait_for_room()
                    self._waiting_for_room_since = None
                try:
                    msg = await anext(messages)
                except StopAsyncIteration:
                    return
                scheduler.submit(msg, msg.key if ordered else None)
        finally:
            close = getattr(messages, "aclose", None)
            if close is not None:
                await close()

    def _require_idle(self, action: str) -> None:
        if self._running:
            raise RuntimeError(f"cannot {action} while the listener is running")


def _with_outer(handler: Handler, outer: Sequence[Middleware[Context]]) -> Handler:
    return replace(handler, middleware=(*outer, *handler.middleware))

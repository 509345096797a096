"""`TestClient`: run an app or listeners, whatever backend they were configured for, on a
private in-memory broker, emit events at them and see what happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from typing_extensions import Self

from dispytch.app import App
from dispytch.backends.memory import MemoryProducer
from dispytch.emitter.emitter import EventEmitter
from dispytch.event import EventBase
from dispytch.listener.handler import handler_name
from dispytch.listener.listener import EventListener
from dispytch.serialization import Serializer
from dispytch.testing.recording import CallRecord, DeadLetterRecord, EmittedEvents, Recorder
from dispytch.testing.stand_in import StandInBroker, StandIns

Overrides = Mapping[Callable[..., Any], Any]


class TestClient:
    """Runs `target` (an `App`, a listener or several) on a private in-memory broker.

    Listeners configured for Kafka, RabbitMQ, Redis or any plugin keep their groups,
    topics, retries, dead-letter settings and middleware; no connection is made. The
    `emitters` handed in (and an app's own) publish to the same broker, and what they
    emit is recorded in `emitted`. `overrides` (`{dependency: replacement}`) replaces
    dependencies for the client's life, nested and app-scoped ones included; a
    replacement that is not callable is injected as it is.

    ```python
    async with TestClient(listener, emitters=[emitter], overrides={mailer: fake}) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
        client.emitted.assert_any(WelcomeSent, user_id=1)
    ```

    `emit` returns once every handler of the event (and of what they emitted in turn) has
    settled; with `raise_errors` a handler's final exception is raised there. Waits give
    up after `timeout` seconds, saying what is still unsettled.
    """

    __test__ = False  # not a test class, despite its name

    def __init__(
        self,
        target: App | EventListener | Sequence[EventListener],
        *,
        emitters: Sequence[EventEmitter] = (),
        overrides: Overrides | None = None,
        raise_errors: bool = True,
        timeout: float = 10.0,
        serializer: Serializer | None = None,
    ) -> None:
        if isinstance(target, App):
            self.app = target
        elif isinstance(target, EventListener):
            self.app = App([target])
        else:
            self.app = App(list(target))
        self.emitters = list(dict.fromkeys([*self.app.emitters, *emitters]))
        self.overrides = {k: _as_dependency(v) for k, v in (overrides or {}).items()}
        self.raise_errors = raise_errors
        self.timeout = timeout
        self.broker = StandInBroker()
        self._stand_ins = StandIns(self.broker)
        self._recorder = Recorder(self.broker)
        listeners = self.app.listeners
        chosen = serializer or (listeners[0].serializer if listeners else None)
        self._emitter = EventEmitter(MemoryProducer(self.broker), serializer=chosen)
        self._saved_overrides: list[tuple[Any, dict[Callable[..., Any], Callable[..., Any]]]] = []
        self._watchers: list[asyncio.Future[None]] = []
        self.running = False

    # -- what happened -----------------------------------------------------------------------

    @property
    def emitted(self) -> EmittedEvents:
        """Every event emitted through the emitters handed in (not those `emit` sent)."""
        return self._recorder.emitted

    @property
    def dead_letters(self) -> list[DeadLetterRecord]:
        """The messages listeners gave up on, with reason and error, in order."""
        return self._recorder.dead_letters

    def calls(self, handler: Callable[..., Any]) -> list[CallRecord]:
        """Each call (attempt) of `handler` so far, with the `Event` it got; its body is
        `.body`. `ValueError` for a function no listener has as a handler, and for a batch
        handler, whose calls are not recorded (they pass through no middleware)."""
        name = handler_name(handler)
        handlers = {h.name: h for listener in self.app.listeners for h in listener.handlers}
        if name not in handlers:
            raise ValueError(
                f"{name} is not a handler of the listeners under test; "
                f"their handlers are: {', '.join(sorted(handlers)) or 'none'}"
            )
        if handlers[name].spec.batch is not None:
            raise ValueError(
                f"{name} is a batch handler: the test client does not record its calls, "
                "which pass through no middleware; check what the handler did (its effects, "
                "client.dead_letters) instead"
            )
        return [call for call in self._recorder.calls if call.handler == name]

    # -- acting ------------------------------------------------------------------------------

    async def emit(
        self, event: EventBase, *, raise_errors: bool | None = None, timeout: float | None = None
    ) -> None:
        """Emit `event` to the listeners and return once everything it set off has settled
        (handled, retried or dead-lettered)."""
        self._require_running("emit")
        await self._emitter.emit(event)
        await self.wait_settled(raise_errors=raise_errors, timeout=timeout)

    async def send(
        self,
        topic: str,
        payload: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        raise_errors: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        """Put raw bytes on `topic` (to test what listeners do with a payload no emitter
        would write), then wait as `emit` does."""
        self._require_running("send")
        self.broker.publish(topic, payload, dict(headers or {}), key)
        await self.wait_settled(raise_errors=raise_errors, timeout=timeout)

    async def wait_settled(
        self, *, raise_errors: bool | None = None, timeout: float | None = None
    ) -> None:
        """Return once no delivery on the broker is left unsettled: after events emitted
        by other means (a web route, an app's lifespan) have been handled.

        With `raise_errors` (the client's setting unless given), a handler's final
        exception is raised as soon as it happens; a listener that crashed raises its
        crash. `AssertionError` after `timeout` seconds, listing what is unsettled.
        """
        raise_errors = self.raise_errors if raise_errors is None else raise_errors
        limit = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            self.broker.changed.clear()
            if raise_errors and self._recorder.failures:
                failure = self._recorder.failures.pop(0)
                self._recorder.failures.clear()
                raise failure.error
            await self._raise_crash()
            if not self.broker.unsettled:
                if not raise_errors:
                    self._recorder.failures.clear()
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(self._unsettled(limit))
            changed = asyncio.ensure_future(self.broker.changed.wait())
            waiters: set[asyncio.Future[Any]] = {changed, *self._watchers}
            try:
                await asyncio.wait(
                    waiters,
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                changed.cancel()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self.running:
            raise RuntimeError(
                "this TestClient is already running: leave its `async with` block before "
                "entering it again"
            )
        self._switch()
        try:
            await self.app.start()
        except BaseException:
            self._restore()
            raise
        self.running = True
        self._watchers = [asyncio.ensure_future(x.wait_stopped()) for x in self.app.listeners]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.running = False
        for watcher in self._watchers:
            watcher.cancel()
        self._watchers = []
        try:
            await self.app.stop()
        finally:
            try:
                for emitter in self.emitters:  # their replies come from the private broker
                    await emitter.stop_replies()
            finally:
                self._restore()

    def _switch(self) -> None:
        for listener in self.app.listeners:
            self._stand_ins.switch_listener(listener)
            listener.middleware.insert(0, self._recorder.middleware)
            listener.add_instrumentation(self._recorder)
        for emitter in self.emitters:
            self._stand_ins.switch_emitter(emitter)
            emitter.add_instrumentation(self._recorder)
        if self.overrides:
            owners: list[App | EventListener] = [self.app, *self.app.listeners]
            for owner in owners:
                self._saved_overrides.append((owner, owner.dependency_overrides))
                owner.dependency_overrides = {**owner.dependency_overrides, **self.overrides}

    def _restore(self) -> None:
        for owner, overrides in self._saved_overrides:
            owner.dependency_overrides = overrides
        self._saved_overrides.clear()
        for listener in self.app.listeners:
            if self._recorder.middleware in listener.middleware:
                listener.middleware.remove(self._recorder.middleware)
            if self._recorder in listener.instrumentation:
                listener.remove_instrumentation(self._recorder)
        for emitter in self.emitters:
            if self._recorder in emitter.instrumentation:
                emitter.remove_instrumentation(self._recorder)
        self._stand_ins.restore()

    async def _raise_crash(self) -> None:
        for listener, watcher in zip(self.app.listeners, self._watchers, strict=True):
            if watcher.done():
                await listener.stop()  # raises what made it stop
                raise RuntimeError(f"a listener of group {listener.group!r} stopped consuming")

    def _unsettled(self, limit: float) -> str:
        lines = [f"{len(self.broker.unsettled)} deliveries not settled within {limit}s:"]
        for delivery in self.broker.unsettled.values():
            lines.append(f"  - topic {delivery.topic!r}, delivered {delivery.attempt} time(s)")
        lines.append(
            "A handler may still be running, or a failing one is being redelivered "
            "(the listener has no dead-letter topic): set raise_errors=True or max_deliveries."
        )
        return "\n".join(lines)

    def _require_running(self, action: str) -> None:
        if not self.running:
            raise RuntimeError(f"cannot {action}: use the client in `async with TestClient(...)`")


def _as_dependency(replacement: Any) -> Callable[..., Any]:
    """A replacement as a dependency: a callable as it is, any other value returned as is."""
    if callable(replacement):
        return replacement  # type: ignore[no-any-return]

    def provide() -> Any:
        return replacement

    return provide

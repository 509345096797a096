"""`App`: a service's listeners and emitters, its lifespan and its app-scoped dependencies,
started and stopped as one unit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from typing_extensions import Self

from dispytch.di.app_scope import enter_app_scoped
from dispytch.di.plan import Call
from dispytch.emitter.emitter import EventEmitter
from dispytch.event import EventBase
from dispytch.health import AppHealth
from dispytch.instrumentation import Instrumentation
from dispytch.listener.listener import EventListener

logger = logging.getLogger("dispytch.app")

Lifespan = Callable[["App"], AbstractAsyncContextManager[Any]]
"""`lifespan(app)`: an async context manager entered before anything starts and exited
after everything stopped (an `@asynccontextmanager` function, as in Starlette)."""


class App:
    """Starts listeners and emitters as one unit, runs until stopped, stops them gracefully.

    Starting enters `lifespan`, starts the emitters, enters the app-scoped dependencies
    (`Dependency(func, scope="app")`) every listener's handlers use, then starts the
    listeners; if any step fails, what started is stopped and no listener pulls.
    Stopping goes the other way: listeners first (in-flight handlers get `stop_timeout`
    seconds), then app-scoped dependencies, emitters, lifespan.

    `dependency_overrides` (`{original: replacement}`) replaces dependencies, nested ones
    included, in every listener; a listener's own overrides win. `emits` lists the event
    classes the app emits, for generated documentation.
    """

    def __init__(
        self,
        listeners: Sequence[EventListener] = (),
        emitters: Sequence[EventEmitter] = (),
        *,
        lifespan: Lifespan | None = None,
        emits: Sequence[type[EventBase]] = (),
        stop_timeout: float = 30.0,
    ) -> None:
        self.listeners = list(listeners)
        self.emitters = list(emitters)
        self.lifespan = lifespan
        self.emits = list(emits)
        self.stop_timeout = stop_timeout
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._stack: AsyncExitStack | None = None
        self._started: list[EventListener] = []
        self._failures: list[BaseException] = []
        self._stopping = False
        self._stop_requested = asyncio.Event()

    def add_instrumentation(self, instrumentation: Instrumentation) -> None:
        """Attach `instrumentation` (tracing, metrics) to every listener and emitter the app
        has now; see `dispytch.instrumentation`."""
        parts: list[EventListener | EventEmitter] = [*self.listeners, *self.emitters]
        for part in parts:
            part.add_instrumentation(instrumentation)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything; return once every listener is consuming."""
        if self._stack is not None:
            raise RuntimeError("the app is already started: stop() it before starting it again")
        self._stopping = False
        stack = AsyncExitStack()
        try:
            if self.lifespan is not None:
                await stack.enter_async_context(self.lifespan(self))
            for emitter in self.emitters:
                await stack.enter_async_context(emitter)
            values = await enter_app_scoped(self.app_scoped_dependencies(), stack)
            for listener in self.listeners:
                listener.provide_app_scope(values, dict(self.dependency_overrides))
            stack.push_async_callback(self._stop_listeners)
            for listener in self.listeners:
                await listener.start()
                self._started.append(listener)
        except BaseException:
            await stack.aclose()
            self._failures = []  # what failed to start is raised; the rest were stopped
            raise
        self._stack = stack

    async def stop(self, timeout: float | None = None) -> None:
        """Stop listeners (in-flight handlers get `timeout` seconds, by default
        `stop_timeout`), then app-scoped dependencies, emitters and lifespan.

        Raises what made a listener fail, once everything stopped.
        """
        self._stopping = True
        stack, self._stack = self._stack, None
        if stack is None:
            return
        self._stop_requested.set()
        if timeout is not None:
            self.stop_timeout = timeout
        try:
            await stack.aclose()
        finally:
            self._stop_requested.clear()
        failures, self._failures = self._failures, []
        if failures:
            raise failures[0]

    @property
    def stop_requested(self) -> bool:
        """True once `request_stop()` or `stop()` was called, until the app stopped."""
        return self._stop_requested.is_set()

    def request_stop(self) -> None:
        """Make `run()` stop the app; for signal handlers. Readiness turns false at once."""
        self._stopping = True
        self._stop_requested.set()

    async def run(self) -> None:
        """Start, run until `request_stop()` (or a listener fails), then stop.

        Raises what made a listener fail, after stopping the rest.
        """
        await self.start()
        await self.serve()

    async def serve(self) -> None:
        """Run the started app until `request_stop()` (or a listener fails), then stop it.

        Raises what made a listener fail, after stopping the rest.
        """
        stopped = asyncio.ensure_future(self._stop_requested.wait())
        failures = [asyncio.ensure_future(listener.wait_stopped()) for listener in self._started]
        try:
            await asyncio.wait({stopped, *failures}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            requested = stopped.done()
            for waiter in (stopped, *failures):
                waiter.cancel()
            await self.stop()  # raises what made a listener fail
        if not requested:
            raise RuntimeError("a listener stopped consuming on its own; the app stopped with it")

    @property
    def running(self) -> bool:
        """True from a successful `start()` until `stop()`."""
        return self._stack is not None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- health and dependencies ---------------------------------------------------------

    async def health(self, *, stale_after: float = 60.0, ping_timeout: float = 2.0) -> AppHealth:
        """Ready when the app runs, is not stopping, and every listener is ready."""
        listeners = tuple(
            await asyncio.gather(
                *(
                    listener.health(stale_after=stale_after, ping_timeout=ping_timeout)
                    for listener in self.listeners
                )
            )
        )
        if self._stack is None:
            return AppHealth(False, listeners, "not started")
        if self._stopping:
            return AppHealth(False, listeners, "stopping")
        reasons = [h.reason for h in listeners if not h.ready]
        return AppHealth(
            not reasons, listeners, "; ".join(r or "not ready" for r in reasons) or None
        )

    def app_scoped_dependencies(self) -> list[Call]:
        """The app-scoped dependencies of every listener, each once, dependencies first."""
        found: dict[Callable[..., Any], Call] = {}
        for listener in self.listeners:
            for call in listener.app_scoped_dependencies(self.dependency_overrides):
                found.setdefault(call.func, call)
        return list(found.values())

    async def _stop_listeners(self) -> None:
        """Stop every started listener; keep what made one fail for `stop()` to raise once
        everything else stopped too."""
        started, self._started = self._started, []
        results = await asyncio.gather(
            *(listener.stop(self.stop_timeout) for listener in started), return_exceptions=True
        )
        for listener in started:
            listener.provide_app_scope(None, {})
        self._failures += [r for r in results if isinstance(r, BaseException)]

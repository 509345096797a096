"""Running a call plan for one event: validate, inject, call, tear down."""

from __future__ import annotations

import inspect
from contextlib import AsyncExitStack
from typing import Any

from pydantic import TypeAdapter, ValidationError

from dispytch.di.plan import (
    Call,
    ContextParam,
    DefaultParam,
    EventParam,
    MessageParam,
    SegmentParam,
    Source,
    as_context_manager,
)
from dispytch.event import Event
from dispytch.listener.consumer import Message
from dispytch.serialization import Envelope


class InvalidEvent(ValueError):
    """The event's body or a topic segment does not validate against what a handler declared."""


class Scope:
    """What one handler invocation draws its values from, plus its caches and teardowns."""

    def __init__(self, envelope: Envelope, message: Message, segments: dict[str, str]) -> None:
        self.envelope = envelope
        self.message = message
        self.segments = segments
        self.context: Any = None  # the middleware Context, set once it exists
        self.exit_stack = AsyncExitStack()
        self._events: dict[int, Event[Any]] = {}
        self.results: dict[Any, Any] = {}

    def event(self, body: TypeAdapter[Any] | None) -> Event[Any]:
        """The `Event` with its body validated by `body` (once per body type)."""
        key = id(body)
        cached = self._events.get(key)
        if cached is None:
            raw = self.envelope.body
            try:
                value = raw if body is None else body.validate_python(raw)
            except ValidationError as exc:
                raise InvalidEvent(f"event body does not validate: {exc}") from exc
            e = self.envelope
            cached = Event(e.id, e.type, self.message.topic, value, e.timestamp, self.message)
            self._events[key] = cached
        return cached


async def call(plan: Call, scope: Scope) -> Any:
    """Resolve `plan`'s parameters in `scope` and call it; teardowns are pushed to the scope."""
    kwargs = {name: await _value(source, scope) for name, source in plan.params.items()}
    if plan.kind == "async":
        return await plan.func(**kwargs)
    if plan.kind == "sync":
        result = plan.func(**kwargs)
        return await result if inspect.isawaitable(result) else result
    manager = as_context_manager(plan)(**kwargs)
    if plan.kind == "async_cm":
        return await scope.exit_stack.enter_async_context(manager)
    return scope.exit_stack.enter_context(manager)


async def _value(source: Source, scope: Scope) -> Any:
    if isinstance(source, EventParam):
        return scope.event(source.body)
    if isinstance(source, Call):
        if not source.use_cache:
            return await call(source, scope)
        cache = scope.results
        if source.func not in cache:
            cache[source.func] = await call(source, scope)
        return cache[source.func]
    if isinstance(source, SegmentParam):
        raw = scope.segments[source.segment]
        try:
            return source.adapter.validate_python(raw)
        except ValidationError as exc:
            raise InvalidEvent(f"topic segment {{{source.segment}}}={raw!r} is invalid: {exc}") from exc
    if isinstance(source, ContextParam):
        return scope.context
    if isinstance(source, MessageParam):
        return scope.message
    assert isinstance(source, DefaultParam)
    return source.value

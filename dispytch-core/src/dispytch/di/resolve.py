"""Running a call plan for one event: validate, inject, call, tear down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from pydantic import TypeAdapter

from dispytch.di.plan import (
    ARG_CACHED_CALL,
    ARG_CALL,
    ARG_EVENT,
    Call,
    ContextParam,
    DefaultParam,
    EventParam,
    EventsParam,
    MessageParam,
    SegmentParam,
    as_context_manager,
)
from dispytch.event import Event, EventBase
from dispytch.listener.consumer import Message
from dispytch.serialization import Envelope

_NONE = object()


class InvalidEvent(ValueError):
    """The event's body or a topic segment does not validate against what a handler declared."""


class Scope:
    """What one handler invocation draws its values from, plus its caches and teardowns."""

    __slots__ = (
        "_body",
        "_event",
        "_more",
        "context",
        "envelope",
        "events",
        "exit_stack",
        "message",
        "results",
        "segments",
    )

    def __init__(
        self,
        envelope: Envelope,
        message: Message,
        segments: dict[str, str],
        events: list[Event[Any]] | None = None,
    ) -> None:
        """`events`: a batch handler's events, validated already (the envelope and the
        message are then those of the first)."""
        self.envelope = envelope
        self.message = message
        self.segments = segments
        self.events = events
        self.context: Any = None  # the middleware Context, set once it exists
        self.exit_stack: AsyncExitStack | None = None  # created by the first teardown
        self.results: dict[Callable[..., Any], Any] = {}
        self._body: Any = _NONE  # the body type of the first Event asked for, and that Event
        self._event: Event[Any] | None = None
        self._more: dict[int, Event[Any]] | None = None  # Events of further body types

    async def close(self, error: BaseException | None) -> None:
        """Run the teardowns, newest first; each sees `error`, the handler's exception."""
        if self.exit_stack is not None:
            await self.exit_stack.__aexit__(
                type(error) if error else None, error, error.__traceback__ if error else None
            )

    def event(self, body: TypeAdapter[Any] | None) -> Event[Any]:
        """The `Event` with its body validated by `body` (once per body type)."""
        if body is self._body:
            assert self._event is not None
            return self._event
        if self._event is None:
            self._body = body
            event = self._event = validated_event(body, self.envelope, self.message)
            return event
        more = self._more = self._more or {}
        if id(body) not in more:
            more[id(body)] = validated_event(body, self.envelope, self.message)
        return more[id(body)]


def validated_event(body: TypeAdapter[Any] | None, e: Envelope, message: Message) -> Event[Any]:
    """The `Event` of `message`, its body validated by `body`; `InvalidEvent` if it fails."""
    raw = e.body
    try:
        value = raw if body is None else body.validator.validate_python(raw)
    except Exception as exc:  # ValidationError, or RecursionError on a hostile body
        raise InvalidEvent(f"event body does not validate: {exc}") from exc
    if isinstance(value, EventBase):  # an emitted event's class, as the body type
        value.id = e.id
    return Event(e.id, e.type, message.topic, value, e.timestamp, message)


def run_on(
    plan: Call, envelope: Envelope, message: Message, segments: dict[str, str]
) -> Awaitable[Any]:
    """`run` the handler `plan` on one event, in a `Scope` of its own when it needs one."""
    if plan.needs_scope:
        return run(plan, Scope(envelope, message, segments))
    args = [  # an Event, and plain functions called as is
        validated_event(what, envelope, message) if how == ARG_EVENT else what()
        for _, how, what in plan.direct_args
    ]
    return _called(plan, args)


def run(plan: Call, scope: Scope) -> Awaitable[Any]:
    """Call the handler `plan` in `scope`; teardowns run after it and see its exception."""
    if plan.is_direct:  # the common handler, which has no teardown
        return _called(plan, _direct_args(plan, scope))
    return _with_teardown(plan, scope) if plan.has_teardown else call(plan, scope)


async def _with_teardown(plan: Call, scope: Scope) -> Any:
    try:
        result = await call(plan, scope)
    except BaseException as exc:
        await scope.close(exc)
        raise
    if scope.exit_stack is not None:
        await scope.close(None)
    return result


def call(plan: Call, scope: Scope) -> Awaitable[Any]:
    """Resolve `plan`'s parameters in `scope` and call it; teardowns are pushed to the scope.

    An async function whose parameters need no awaiting (the common handler) is called
    right away and its coroutine returned, without a coroutine of our own around it.
    """
    if plan.is_direct:
        return _called(plan, _direct_args(plan, scope))
    return _call(plan, scope)


async def _call(plan: Call, scope: Scope) -> Any:
    kwargs = {}
    for name, source in plan.params.items():
        if type(source) is not Call:
            kwargs[name] = _PROVIDERS[type(source)](source, scope)
        elif source.is_plain:
            kwargs[name] = _plain(source, scope)
        elif source.use_cache and source.func in scope.results:
            kwargs[name] = scope.results[source.func]
        else:
            value = await call(source, scope)
            if source.use_cache:
                scope.results[source.func] = value
            kwargs[name] = value
    if plan.kind == "async":
        return await plan.func(**kwargs)
    if plan.kind == "sync":
        return plan.func(**kwargs)
    manager = as_context_manager(plan)(**kwargs)
    if scope.exit_stack is None:
        scope.exit_stack = AsyncExitStack()
    if plan.kind == "async_cm":
        return await scope.exit_stack.enter_async_context(manager)
    return scope.exit_stack.enter_context(manager)


def _direct_args(plan: Call, scope: Scope) -> list[Any]:
    """The arguments, in order, of a call whose dependencies are all plain sync functions."""
    args = []
    for _, how, what in plan.direct_args:
        if how == ARG_EVENT:
            args.append(scope.event(what))
        elif how == ARG_CALL:
            args.append(what())
        elif how == ARG_CACHED_CALL:
            args.append(_plain(what, scope))
        else:
            args.append(_PROVIDERS[type(what)](what, scope))
    return args


def _called(plan: Call, args: list[Any]) -> Awaitable[Any]:
    """`plan`'s async function called with `args`, one per parameter in order: by
    position, which costs least, unless a parameter is keyword-only."""
    if plan.positional:
        coroutine: Awaitable[Any] = plan.func(*args)
    else:
        coroutine = plan.func(**dict(zip(plan.params, args, strict=True)))
    return coroutine


def _plain(plan: Call, scope: Scope) -> Any:
    """The value of a plain sync dependency, called once per scope when cached.

    Like FastAPI, what a sync dependency returns is injected as is.
    """
    if plan.use_cache:
        results = scope.results
        if plan.func in results:
            return results[plan.func]
    value = plan.func(**_plain_kwargs(plan, scope)) if plan.params else plan.func()
    if plan.use_cache:
        scope.results[plan.func] = value
    return value


def _plain_kwargs(plan: Call, scope: Scope) -> dict[str, Any]:
    return {name: _PROVIDERS[type(source)](source, scope) for name, source in plan.params.items()}


def _segment(source: SegmentParam, scope: Scope) -> Any:
    raw = scope.segments[source.segment]
    try:
        return source.adapter.validate_python(raw)
    except Exception as exc:
        raise InvalidEvent(f"topic segment {{{source.segment}}}={raw!r} is invalid: {exc}") from exc


_PROVIDERS: dict[type, Callable[[Any, Scope], Any]] = {
    EventParam: lambda source, scope: scope.event(source.body),
    EventsParam: lambda source, scope: scope.events,
    SegmentParam: _segment,
    ContextParam: lambda source, scope: scope.context,
    MessageParam: lambda source, scope: scope.message,
    DefaultParam: lambda source, scope: source.value,
}

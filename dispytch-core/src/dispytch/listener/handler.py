"""A registered handler: what it listens to, how it is called, and what happens when it fails."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dispytch.dead_letter import check_topic_template
from dispytch.di.plan import (
    Call,
    ContextParam,
    DependencyError,
    EventParam,
    EventsParam,
    MessageParam,
    Overrides,
    SegmentParam,
    plan_call,
)
from dispytch.listener.batch import Batch
from dispytch.middleware import Context, Middleware
from dispytch.retry import RetryPolicy
from dispytch.routing import TopicPattern

ANY_EVENT = "*"
"""Pass as `event=` to handle every event type on the topic."""

DEFAULT = object()
"""Marks a dead-letter topic left to the listener's setting."""


@dataclass(frozen=True)
class HandlerSpec:
    """A handler as declared, before a listener knows its topic delimiter."""

    func: Callable[..., Any]
    topic: str
    event: str
    retry: RetryPolicy
    middleware: tuple[Middleware[Context], ...] = ()
    dead_letter_topic: Any = DEFAULT
    batch: Batch | None = None
    """Set for a batch handler: how its events are collected."""

    def bind(self, delimiter: str, outer: Sequence[Middleware[Context]] = ()) -> Handler:
        """The handler as a listener runs it: its pattern parsed and its call planned."""
        pattern = TopicPattern(self.topic, delimiter)
        try:
            plan = plan_call(self.func, segments=pattern.params, context_type=Context)
        except DependencyError as exc:
            raise DependencyError(f"handler for topic {self.topic!r}: {exc}") from None
        return Handler(self, pattern, plan, (*outer, *self.middleware))


@dataclass(frozen=True)
class Handler:
    """A handler bound to a listener."""

    spec: HandlerSpec
    pattern: TopicPattern
    plan: Call
    middleware: tuple[Middleware[Context], ...] = field(default=())

    @property
    def name(self) -> str:
        """The handler's name in logs, metrics and dead letters: see `handler_name`."""
        return handler_name(self.spec.func)

    @property
    def events_body(self) -> Any:
        """A batch handler's body type adapter (None: bodies as decoded)."""
        for source in self.plan.params.values():
            if isinstance(source, EventsParam):
                return source.body
        return None

    def accepts(self, event_type: str) -> bool:
        return self.spec.event in (event_type, ANY_EVENT)

    def replanned(
        self, overrides: Overrides, app_values: Mapping[Callable[..., Any], Any] | None
    ) -> Handler:
        """This handler with its dependencies replaced by `overrides` and its app-scoped
        dependencies injected from `app_values` (None: left as calls)."""
        try:
            plan = plan_call(
                self.spec.func,
                segments=self.pattern.params,
                context_type=Context,
                overrides=overrides,
                app_values=app_values,
            )
        except DependencyError as exc:
            raise DependencyError(f"handler for topic {self.spec.topic!r}: {exc}") from None
        return replace(self, plan=plan)


def handler_name(func: Callable[..., Any]) -> str:
    """The name a listener knows a handler function by (module and qualified name)."""
    return f"{func.__module__}.{func.__qualname__}"


def handler_spec(
    func: Callable[..., Any],
    *,
    topic: str | None,
    event: str | None,
    retries: int,
    retry_on: type[BaseException] | Iterable[type[BaseException]] | None,
    retry_interval: float,
    retry: RetryPolicy | None,
    middleware: Sequence[Middleware[Context]],
    dead_letter_topic: Any,
    batch: Batch | None = None,
) -> HandlerSpec:
    """Validate decorator arguments into a spec; the error names the handler."""
    where = getattr(func, "__qualname__", repr(func))
    if topic is None:
        raise TypeError(f"handler {where}: no topic; pass topic=... or set a group default_topic")
    if event is None:
        raise TypeError(
            f"handler {where}: no event type; pass event=... (or event='*' for every type) "
            "or set a group default_event"
        )
    if not inspect.iscoroutinefunction(func):
        raise TypeError(f"handler {where} must be an async function (async def)")
    plan = plan_call(func, segments=None, context_type=Context)  # report signature errors now
    _check_batch(where, plan, batch, middleware)
    if dead_letter_topic not in (DEFAULT, None):
        try:
            check_topic_template(dead_letter_topic)
        except ValueError as exc:
            raise ValueError(f"handler {where}: {exc}") from None
    policy = retry or RetryPolicy.of(retries, retry_on, retry_interval)
    return HandlerSpec(func, topic, event, policy, tuple(middleware), dead_letter_topic, batch)


_PER_EVENT = (EventParam, MessageParam, SegmentParam, ContextParam)


def _check_batch(
    where: str, plan: Call, batch: Batch | None, middleware: Sequence[Middleware[Context]]
) -> None:
    """A batch handler takes `list[Event[Body]]` and nothing that differs per event; a
    single-event handler takes no list of events."""
    sources = list(_sources(plan))
    if batch is None:
        if any(isinstance(source, EventsParam) for source in sources):
            raise TypeError(
                f"handler {where} takes list[Event[...]], which only a batch handler gets: "
                "pass batch=Batch(max_size=..., max_wait=...) to the decorator, or take one "
                "Event[Body]"
            )
        return
    if not isinstance(batch, Batch):
        raise TypeError(f"handler {where}: batch= takes a dispytch.Batch, got {batch!r}")
    if not any(isinstance(source, EventsParam) for source in plan.params.values()):
        raise TypeError(
            f"batch handler {where} needs a parameter annotated list[Event[Body]] for its events"
        )
    per_event = [type(s).__name__ for s in sources if isinstance(s, _PER_EVENT)]
    if per_event:
        raise TypeError(
            f"batch handler {where} (or a dependency of it) asks for one event's value "
            f"({', '.join(sorted(set(per_event)))}); a batch has many: read them from each "
            "Event of its list[Event[Body]] (event.topic, event.message, event.headers)"
        )
    if middleware:
        raise TypeError(
            f"batch handler {where}: middleware wraps single-event calls and is not applied "
            "to batch handlers; drop middleware=... (instrumentation reports batch calls)"
        )


def _sources(plan: Call) -> Iterator[Any]:
    for source in plan.params.values():
        yield source
        if isinstance(source, Call):
            yield from _sources(source)

"""A registered handler: what it listens to, how it is called, and what happens when it fails."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dispytch.dead_letter import check_topic_template
from dispytch.di.plan import Call, DependencyError, Overrides, plan_call
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
        return f"{self.spec.func.__module__}.{self.spec.func.__qualname__}"

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
    plan_call(func, segments=None, context_type=Context)  # report signature errors now
    if dead_letter_topic not in (DEFAULT, None):
        try:
            check_topic_template(dead_letter_topic)
        except ValueError as exc:
            raise ValueError(f"handler {where}: {exc}") from None
    policy = retry or RetryPolicy.of(retries, retry_on, retry_interval)
    return HandlerSpec(func, topic, event, policy, tuple(middleware), dead_letter_topic)

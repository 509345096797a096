"""`HandlerGroup`: handlers declared together, sharing defaults and middleware."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from dispytch.listener.batch import Batch
from dispytch.listener.handler import DEFAULT, HandlerSpec, handler_spec
from dispytch.middleware import Context, Middleware
from dispytch.retry import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])


class HandlerGroup:
    """A set of handlers to add to a listener with `listener.add_handler_group(group)`.

    `default_topic` and `default_event` apply where a handler names none;
    `middleware` wraps every handler of the group, inside the listener's own.
    """

    def __init__(
        self,
        default_topic: str | None = None,
        default_event: str | None = None,
        *,
        middleware: Sequence[Middleware[Context]] = (),
    ) -> None:
        self.default_topic = default_topic
        self.default_event = default_event
        self.middleware = list(middleware)
        self.specs: list[HandlerSpec] = []

    def handler(
        self,
        *,
        topic: str | None = None,
        event: str | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
        retry_interval: float = 1.25,
        retry: RetryPolicy | None = None,
        middleware: Sequence[Middleware[Context]] = (),
        dead_letter_topic: str | Any | None = DEFAULT,
        batch: Batch | None = None,
    ) -> Callable[[F], F]:
        """Register an async handler for `event` on `topic` (a pattern with `{name}` and `*`).

        `retries`, `retry_on` and `retry_interval` build a `RetryPolicy` (pass `retry`
        for backoff, cap and jitter). `dead_letter_topic` overrides the listener's.
        `batch=Batch(...)` makes it a batch handler, taking a `list[Event[Body]]`.
        """

        def register(func: F) -> F:
            self.specs.append(
                handler_spec(
                    func,
                    topic=topic or self.default_topic,
                    event=event or self.default_event,
                    retries=retries,
                    retry_on=retry_on,
                    retry_interval=retry_interval,
                    retry=retry,
                    middleware=middleware,
                    dead_letter_topic=dead_letter_topic,
                    batch=batch,
                )
            )
            return func

        return register

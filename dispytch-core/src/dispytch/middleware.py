"""Middleware: plain async callables wrapped around each handler call or each emit.

A listener middleware is `async def mw(ctx: Context, call_next) -> Any`; it may
inspect or change `ctx`, call `await call_next(ctx)` (or not, to skip the
handler), and handle what it raises. Order, outermost first: listener
middleware, then handler-group middleware, then the handler's own; retries wrap
the whole chain, so each attempt passes through every middleware.

An emitter middleware is `async def mw(ctx: EmitContext, call_next) -> None`;
it may add headers to `ctx.message` before calling `call_next(ctx)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from dispytch.emitter.producer import OutgoingMessage
from dispytch.event import Event, EventBase
from dispytch.listener.consumer import Message
from dispytch.routing import TopicPattern

if TYPE_CHECKING:
    from dispytch.di.resolve import Scope

CtxT = TypeVar("CtxT")
CallNext = Callable[[CtxT], Awaitable[Any]]
Middleware = Callable[[CtxT, CallNext[CtxT]], Awaitable[Any]]


class HandlerInfo(Protocol):
    """What middleware sees of the handler it wraps."""

    @property
    def name(self) -> str:
        """The handler function's module and qualified name."""

    @property
    def pattern(self) -> TopicPattern:
        """The topic pattern the handler listens to."""


@dataclass(slots=True)
class Context:
    """One handler call as middleware sees it, injectable into handlers as `Context`.

    `attempt` counts this handler's retries (1-based); `message.attempt` counts
    broker deliveries. `state` is free for middleware to share data.
    """

    event: Event[Any]
    scope: Scope = field(repr=False)
    handler: HandlerInfo
    attempt: int = 1
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scope.context = self

    @property
    def message(self) -> Message:
        return self.scope.message


@dataclass
class EmitContext:
    """One emit as emitter middleware sees it."""

    event: EventBase
    message: OutgoingMessage


@dataclass(frozen=True)
class Chain(Generic[CtxT]):
    """Middleware folded around an endpoint, built once."""

    run: CallNext[CtxT]

    @classmethod
    def build(cls, middleware: Sequence[Middleware[CtxT]], endpoint: CallNext[CtxT]) -> Chain[CtxT]:
        call: CallNext[CtxT] = endpoint
        for mw in reversed(middleware):
            call = _link(mw, call)
        return cls(call)


def _link(mw: Middleware[CtxT], call_next: CallNext[CtxT]) -> CallNext[CtxT]:
    def linked(ctx: CtxT) -> Awaitable[Any]:
        return mw(ctx, call_next)

    return linked

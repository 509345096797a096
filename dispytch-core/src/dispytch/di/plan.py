"""Turning a handler's signature into a plan, once, when the handler is registered.

Every parameter must say where its value comes from; anything unclear (an
unknown parameter, a cycle, a `{segment}` the topic lacks) is reported here,
not at the first message.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter

from dispytch.di.markers import Dependency, DependencyScope, TopicSegment
from dispytch.event import Event
from dispytch.listener.consumer import Message


class DependencyError(TypeError):
    """A handler or dependency signature cannot be satisfied."""


CallKind = Literal["async", "sync", "async_cm", "sync_cm"]

Overrides = Mapping[Callable[..., Any], Callable[..., Any]]
"""`{original: replacement}`: dependencies to call in place of the ones declared."""

ARG_EVENT: Final = 0
ARG_CALL: Final = 1
ARG_CACHED_CALL: Final = 2
ARG_OTHER: Final = 3
"""How a direct call gets an argument: the `Event` for a body type, a plain function
called as is, a plain dependency through the per-call cache, or another source (Final,
so the compiled build compares with the numbers themselves)."""


@dataclass(frozen=True)
class EventParam:
    body: TypeAdapter[Any] | None  # None: the handler wants the body as decoded


@dataclass(frozen=True)
class EventsParam:
    """A batch handler's events, `list[Event[Body]]`."""

    body: TypeAdapter[Any] | None  # None: the events' bodies as decoded


@dataclass(frozen=True)
class SegmentParam:
    segment: str
    adapter: TypeAdapter[Any]


@dataclass(frozen=True)
class ContextParam:
    """The middleware/handler context object (`dispytch.Context`)."""


@dataclass(frozen=True)
class MessageParam:
    """The backend message itself."""


@dataclass(frozen=True)
class DefaultParam:
    value: Any


Source = Union[
    EventParam, EventsParam, SegmentParam, ContextParam, MessageParam, DefaultParam, "Call"
]


@dataclass(frozen=True)
class Call:
    """A function to call with resolved parameters: the handler or one dependency."""

    func: Callable[..., Any]
    kind: CallKind
    params: dict[str, Source] = field(default_factory=dict)
    use_cache: bool = True
    scope: DependencyScope = "event"
    positional: bool = False
    """True when every parameter can be passed by position (none is keyword-only): the
    call then passes its arguments in order, which costs less than by name."""
    is_plain: bool = field(init=False)
    """True for a plain sync function without dependencies of its own."""
    wants_context: bool = field(init=False)
    """True when this call or a dependency of it takes the handler `Context`."""

    has_teardown: bool = field(init=False)
    """True when this call or a dependency of it is a context manager or generator."""
    is_direct: bool = field(init=False)
    """True for an async function whose dependencies are all plain: its arguments are
    resolved without awaiting anything."""
    direct_args: tuple[tuple[str, int, Any], ...] = field(init=False)
    """For a direct call, `(name, ARG_*, what)` for each argument, worked out once."""
    needs_scope: bool = field(init=False)
    """False for a direct call whose arguments are at most one `Event` and plain
    functions called as is: it is called without a `Scope`."""

    def __post_init__(self) -> None:
        calls = [p for p in self.params.values() if isinstance(p, Call)]
        plain = not calls and self.kind == "sync" and self.scope == "event"
        object.__setattr__(self, "is_plain", plain)
        teardown = self.kind.endswith("_cm") or any(c.has_teardown for c in calls)
        object.__setattr__(self, "has_teardown", teardown)
        direct = self.kind == "async" and all(c.is_plain for c in calls)
        object.__setattr__(self, "is_direct", direct)
        args = _direct_args(self.params) if direct else ()
        object.__setattr__(self, "direct_args", args)
        kinds = [how for _, how, _ in args]
        scopeless = direct and kinds.count(ARG_EVENT) <= 1 and set(kinds) <= {ARG_EVENT, ARG_CALL}
        object.__setattr__(self, "needs_scope", not scopeless)
        wants = any(
            isinstance(p, ContextParam) or (isinstance(p, Call) and p.wants_context)
            for p in self.params.values()
        )
        object.__setattr__(self, "wants_context", wants)


def _direct_args(params: dict[str, Source]) -> tuple[tuple[str, int, Any], ...]:
    """How a direct call gets each argument. A plain dependency without parameters that
    only one argument asks for needs no cache: it is called as is."""
    uses = Counter(p.func for p in params.values() if isinstance(p, Call) and p.use_cache)
    args: list[tuple[str, int, Any]] = []
    for name, source in params.items():
        if isinstance(source, EventParam):
            args.append((name, ARG_EVENT, source.body))
        elif isinstance(source, Call) and not source.params and uses[source.func] < 2:
            args.append((name, ARG_CALL, source.func))
        elif isinstance(source, Call):
            args.append((name, ARG_CACHED_CALL, source))
        else:
            args.append((name, ARG_OTHER, source))
    return tuple(args)


def plan_call(
    func: Callable[..., Any],
    *,
    segments: tuple[str, ...] | None,
    context_type: type,
    use_cache: bool = True,
    scope: DependencyScope = "event",
    overrides: Overrides | None = None,
    app_values: Mapping[Callable[..., Any], Any] | None = None,
    _stack: tuple[Callable[..., Any], ...] = (),
) -> Call:
    """Build the call plan for `func`, recursing into its dependencies.

    `segments` are the topic's `{name}` parameters; None skips that check (the
    topic is not parsed yet). Dependencies found in `overrides` are replaced, nested
    ones included. App-scoped dependencies whose value is in `app_values` (keyed by
    the function called, after overrides) are injected as that value; the others stay
    app-scoped calls, for an app to enter.
    """
    where = _describe(func)
    if func in _stack:
        chain = " -> ".join(_describe(f) for f in (*_stack, func))
        raise DependencyError(f"dependency cycle: {chain}")
    try:
        signature = inspect.signature(func)
        hints = get_type_hints(_hint_target(func), include_extras=True)
    except NameError as exc:
        raise DependencyError(
            f"cannot resolve the annotations of {where}: {exc}. Annotations given as strings "
            "(`from __future__ import annotations`) can only name module-level objects"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise DependencyError(f"cannot read the signature of {where}: {exc}") from exc
    params: dict[str, Source] = {}
    positional = True
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise DependencyError(
                f"{where}: *args and **kwargs cannot be injected (parameter {name!r})"
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise DependencyError(
                f"{where}: parameter {name!r} is positional-only; make it a normal parameter"
            )
        positional = positional and param.kind is param.POSITIONAL_OR_KEYWORD
        annotation = hints.get(name, param.annotation)
        params[name] = _source(
            name,
            annotation,
            param.default,
            where,
            segments=segments,
            context_type=context_type,
            overrides=overrides,
            app_values=app_values,
            stack=(*_stack, func),
        )
    if scope == "app":
        _check_app_scoped(where, params)
    return Call(func, _kind(func), params, use_cache, scope, positional)


def _check_app_scoped(where: str, params: dict[str, Source]) -> None:
    for name, source in params.items():
        if isinstance(source, DefaultParam) or (isinstance(source, Call) and source.scope == "app"):
            continue
        raise DependencyError(
            f"{where} is app-scoped, entered once for the whole app, so its parameter "
            f"{name!r} cannot come from one event: give it a default, or make what it "
            "depends on app-scoped too (Dependency(func, scope='app'))"
        )


def app_scoped_calls(plans: Iterable[Call]) -> list[Call]:
    """The app-scoped calls `plans` depend on, each once, dependencies before dependents."""
    found: dict[Callable[..., Any], Call] = {}

    def visit(call: Call) -> None:
        for source in call.params.values():
            if isinstance(source, Call):
                visit(source)
        if call.scope == "app" and call.func not in found:
            found[call.func] = call

    for plan in plans:
        visit(plan)
    return list(found.values())


def _source(
    name: str,
    annotation: Any,
    default: Any,
    where: str,
    *,
    segments: tuple[str, ...] | None,
    context_type: type,
    overrides: Overrides | None,
    app_values: Mapping[Callable[..., Any], Any] | None,
    stack: tuple[Callable[..., Any], ...],
) -> Source:
    base, markers = _split_annotated(annotation)
    if isinstance(default, (Dependency, TopicSegment)):
        markers.append(default)
        default = inspect.Parameter.empty
    for marker in markers:
        if isinstance(marker, Dependency):
            func = overrides.get(marker.func, marker.func) if overrides else marker.func
            if marker.scope == "app" and app_values is not None and func in app_values:
                return DefaultParam(app_values[func])
            return plan_call(
                func,
                segments=segments,
                context_type=context_type,
                use_cache=marker.use_cache,
                scope=marker.scope,
                overrides=overrides,
                app_values=app_values,
                _stack=stack,
            )
        if isinstance(marker, TopicSegment):
            segment = marker.alias or name
            if segments is not None and segment not in segments:
                raise DependencyError(
                    f"{where}: parameter {name!r} wants topic segment {{{segment}}}, but the "
                    f"handler's topic has {_names(segments)}"
                )
            return SegmentParam(
                segment, TypeAdapter(base if base is not inspect.Parameter.empty else str)
            )
    if base is Event or get_origin(base) is Event:
        args = get_args(base)
        return EventParam(TypeAdapter(args[0]) if args else None)
    if get_origin(base) is list and get_args(base):
        item = get_args(base)[0]
        if item is Event or get_origin(item) is Event:
            args = get_args(item)
            return EventsParam(TypeAdapter(args[0]) if args else None)
    if base is context_type:
        return ContextParam()
    if base is Message:
        return MessageParam()
    if default is not inspect.Parameter.empty:
        return DefaultParam(default)
    raise DependencyError(
        f"{where}: parameter {name!r} has no source. Annotate it as Event[Body], "
        f"list[Event[Body]] (a batch handler's events), "
        f"Annotated[T, Dependency(func)], Annotated[T, TopicSegment()], Context or Message, "
        f"or give it a default"
    )


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        return base, list(extras)
    return annotation, []


def _kind(func: Callable[..., Any]) -> CallKind:
    if inspect.isclass(func):
        if hasattr(func, "__aenter__"):
            return "async_cm"
        return "sync_cm" if hasattr(func, "__enter__") else "sync"
    target = inspect.unwrap(func)
    if inspect.isasyncgenfunction(target):
        return "async_cm"
    if inspect.isgeneratorfunction(target):
        return "sync_cm"
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(func).__call__):
        return "async"
    return "sync"


def as_context_manager(call: Call) -> Callable[..., Any]:
    """The factory that yields a context manager for a `*_cm` call."""
    func = call.func
    if inspect.isclass(func) or inspect.unwrap(func) is not func:
        return func  # a context-manager class, or a contextlib-decorated factory
    if call.kind == "async_cm":
        return contextlib.asynccontextmanager(func)
    return contextlib.contextmanager(func)


def _hint_target(func: Callable[..., Any]) -> Any:
    return func.__init__ if inspect.isclass(func) else func


def _describe(func: Callable[..., Any]) -> str:
    name = getattr(func, "__qualname__", repr(func))
    module = getattr(func, "__module__", None)
    return f"{module}.{name}" if module else name


def _names(segments: tuple[str, ...]) -> str:
    return ", ".join(f"{{{s}}}" for s in segments) if segments else "no segments"

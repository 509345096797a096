"""Markers a handler's parameters carry to say where their values come from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

DependencyScope = Literal["event", "app"]


@dataclass(frozen=True)
class Dependency:
    """Inject what `func` returns: `x: Annotated[T, Dependency(func)]` or `x: T = Dependency(func)`.

    `func` may be a sync or async function, a (async) generator whose code after
    `yield` runs as teardown, a context-manager factory, or a context-manager
    class. Results are cached once per event unless `use_cache=False`.

    With `scope="app"`, `func` is entered once when the app (or a listener running on
    its own) starts and exited once after the last handler finished; every handler of
    every listener shares its value. It may depend only on other app-scoped
    dependencies and defaults.
    """

    func: Callable[..., Any]
    use_cache: bool = True
    scope: DependencyScope = "event"

    def __post_init__(self) -> None:
        if self.scope not in ("event", "app"):
            raise ValueError(f"Dependency scope is 'event' or 'app', got {self.scope!r}")


@dataclass(frozen=True)
class TopicSegment:
    """Inject a `{name}` segment of the topic, converted to the parameter's type.

    `alias` names the segment when it differs from the parameter name.
    """

    alias: str | None = None

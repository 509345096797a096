"""Markers a handler's parameters carry to say where their values come from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dependency:
    """Inject what `func` returns: `x: Annotated[T, Dependency(func)]` or `x: T = Dependency(func)`.

    `func` may be a sync or async function, a (async) generator whose code after
    `yield` runs as teardown, a context-manager factory, or a context-manager
    class. Results are cached once per event unless `use_cache=False`.
    """

    func: Callable[..., Any]
    use_cache: bool = True


@dataclass(frozen=True)
class TopicSegment:
    """Inject a `{name}` segment of the topic, converted to the parameter's type.

    `alias` names the segment when it differs from the parameter name.
    """

    alias: str | None = None

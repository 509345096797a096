"""Entering app-scoped dependencies: once when an app starts, exited once when it stops."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any

from dispytch.di.plan import Call, DefaultParam, as_context_manager


async def enter_app_scoped(
    calls: Iterable[Call], stack: AsyncExitStack
) -> dict[Callable[..., Any], Any]:
    """Call each of `calls` (dependencies listed before dependents, as `app_scoped_calls`
    gives them) and return their values by function; teardowns go on `stack`."""
    values: dict[Callable[..., Any], Any] = {}
    for call in calls:
        kwargs = {
            name: source.value if isinstance(source, DefaultParam) else values[source.func]
            for name, source in call.params.items()
            if isinstance(source, (DefaultParam, Call))
        }
        if call.kind == "async":
            values[call.func] = await call.func(**kwargs)
        elif call.kind == "sync":
            values[call.func] = call.func(**kwargs)
        elif call.kind == "async_cm":
            values[call.func] = await stack.enter_async_context(as_context_manager(call)(**kwargs))
        else:
            values[call.func] = stack.enter_context(as_context_manager(call)(**kwargs))
    return values

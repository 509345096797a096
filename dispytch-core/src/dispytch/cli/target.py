"""Finding the service to run: `module:attr` naming an App, a listener, a handler group,
or (with `--factory`) a callable returning one of those."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from dispytch.app import App
from dispytch.cli.errors import CommandError
from dispytch.cli.options import RunOptions
from dispytch.listener.group import HandlerGroup
from dispytch.listener.listener import EventListener


def load_app(
    target: str, *, factory: bool, backend: str | None, group: str | None, stop_timeout: float
) -> App:
    """The App named by `target`: an App as is, a listener or handler group inside one."""
    found = import_object(target)
    if factory:
        if not callable(found):
            raise CommandError(f"--factory: {target} is a {type(found).__name__}, not a callable")
        found = found()
    elif callable(found) and not isinstance(found, (App, EventListener, HandlerGroup)):
        raise CommandError(f"{target} is a callable; pass --factory to call it for the app")
    if isinstance(found, App):
        if backend:
            raise CommandError("an App's listeners have their backends; drop --backend")
        found.stop_timeout = stop_timeout
        return found
    return App([_listener_for(found, backend, group)], stop_timeout=stop_timeout)


def app_to_run(options: RunOptions) -> App:
    """The App `dispytch run` serves, as its options name it."""
    return load_app(
        options.app,
        factory=options.factory,
        backend=options.backend,
        group=options.group,
        stop_timeout=options.stop_timeout,
    )


def _listener_for(found: Any, backend: str | None, group: str | None) -> EventListener:
    backend = backend or os.environ.get("DISPYTCH_BACKEND")
    group = group or os.environ.get("DISPYTCH_GROUP")
    if isinstance(found, EventListener) and found.backend is None and found.consumer is None:
        if not backend or not group:
            raise CommandError("the listener has no backend: pass --backend and --group")
        return found.use_backend(backend, group=group)
    if isinstance(found, EventListener):
        if backend:
            raise CommandError("the listener already has a backend; drop --backend")
        return found
    if isinstance(found, HandlerGroup):
        if not backend or not group:
            raise CommandError("running a HandlerGroup needs --backend and --group")
        listener = EventListener.from_backend(backend, group=group)
        listener.add_handler_group(found)
        return listener
    raise CommandError(
        f"expected an App, an EventListener or a HandlerGroup, got {type(found).__name__}"
    )


def import_object(target: str) -> Any:
    """The object `module:attr` names, importing the module from the current directory."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise CommandError(f"app must look like module:attr, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise CommandError(f"module {module_name!r} has no attribute {attr!r}") from None

"""The hooks a Dispytch plugin implements. Plugins are found through the `dispytch`
entry-point group; each entry point names a module implementing these hooks."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from dispytch.backends.backend import Backend

hookspec = pluggy.HookspecMarker("dispytch")
hookimpl = pluggy.HookimplMarker("dispytch")


@hookspec
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register one or more backends by calling `register(Backend(...))`."""

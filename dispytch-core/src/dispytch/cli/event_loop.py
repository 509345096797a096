"""Running the service's coroutine on the chosen event loop: asyncio's, or uvloop's
(`pip install 'dispytch-core[uvloop]'`), imported only here and only when chosen."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from dispytch.cli.errors import CommandError
from dispytch.cli.options import LoopName

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], loop: LoopName) -> T:
    """Run `main` to completion on a new event loop of kind `loop`."""
    if loop == "asyncio":
        return asyncio.run(main)
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        main.close()
        raise CommandError(
            "--loop uvloop needs uvloop: pip install 'dispytch-core[uvloop]'"
        ) from None
    result: T = uvloop.run(main)
    return result

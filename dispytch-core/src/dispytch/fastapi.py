"""FastAPI integration (`pip install "dispytch-core[fastapi]"`): run a Dispytch `App` for
the life of a FastAPI application, and hand routes the app's emitter.

```python
app = App([listener], [emitter])
api = FastAPI(lifespan=Lifespan(app))


@api.post("/users")
async def create_user(user: NewUser, emitter: Emitter) -> None:
    await emitter.emit(UserCreated(**user.model_dump()))
```

FastAPI is imported by this module only; core does not depend on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from dispytch.app import App
from dispytch.emitter.emitter import EventEmitter
from dispytch.listener.listener import EventListener

logger = logging.getLogger("dispytch.fastapi")

STATE_KEY = "dispytch"
"""The key of the `Lifespan` in the lifespan state (`request.state.dispytch`)."""


class Lifespan:
    """A FastAPI lifespan that runs an `App` (or `listeners` and `emitters`) with the API.

    On startup the app is started, and startup completes once every listener consumes.
    On shutdown the listeners stop taking messages, in-flight handlers finish (within the
    app's `stop_timeout`), then emitters and the app's lifespan stop. A listener that
    stops consuming while the API runs (its consumer failed) is logged at once, makes
    `App.health()` report not ready, and its error is raised at shutdown rather than left
    in a dead task. An app already running (started by a `TestClient`, say) is left to
    whoever started it.

    `emitter` is what the `Emitter` route dependency hands out; by default the app's only
    emitter. Use it as `FastAPI(lifespan=Lifespan(app))`, or enter it from your own
    lifespan: `async with Lifespan(app)(api) as state: yield {**state, ...}`.
    """

    def __init__(
        self,
        app: App | None = None,
        *,
        listeners: Sequence[EventListener] = (),
        emitters: Sequence[EventEmitter] = (),
        emitter: EventEmitter | None = None,
    ) -> None:
        if app is None:
            app = App(listeners, emitters)
        elif listeners or emitters:
            raise TypeError("pass an App, or listeners and emitters, not both")
        if emitter is None and len(app.emitters) > 1:
            raise TypeError(
                f"the app has {len(app.emitters)} emitters; pass emitter=... to say which "
                "one the Emitter route dependency hands out"
            )
        self.app = app
        self.emitter = emitter or (app.emitters[0] if app.emitters else None)
        self.crash: BaseException | None = None
        """What made a listener stop while the API ran, if one did."""

    @asynccontextmanager
    async def __call__(self, api: FastAPI) -> AsyncIterator[dict[str, Any]]:
        state = {STATE_KEY: self}
        if self.app.running:
            yield state
            return
        self.crash = None
        await self.app.start()
        watch = asyncio.create_task(self._watch())
        try:
            yield state
        finally:
            watch.cancel()
            await asyncio.wait({watch})
            await self.app.stop()
        if self.crash is not None:
            raise self.crash

    async def _watch(self) -> None:
        """Wait for a listener to stop on its own; keep and log what made it stop."""
        listeners = {
            asyncio.ensure_future(listener.wait_stopped()): listener
            for listener in self.app.listeners
        }
        if not listeners:
            return
        try:
            done, _ = await asyncio.wait(listeners, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in listeners:
                waiter.cancel()
        listener = listeners[done.pop()]
        try:
            await listener.stop()
        except Exception as exc:
            self.crash = exc
        else:
            self.crash = RuntimeError(
                f"the listener of group {listener.group!r} stopped consuming on its own"
            )
        logger.error(
            "a listener (group %r) stopped consuming while the API runs and is not restarted; "
            "the app reports not ready and the error is raised at shutdown: %r",
            listener.group,
            self.crash,
            exc_info=self.crash,
        )


def current_emitter(request: Request) -> EventEmitter:
    """The emitter of the running `Lifespan`: a route dependency (see `Emitter`)."""
    lifespan = getattr(request.state, STATE_KEY, None)
    if not isinstance(lifespan, Lifespan):
        raise RuntimeError(
            "no Dispytch lifespan is running: create the API with "
            "FastAPI(lifespan=dispytch.fastapi.Lifespan(app))"
        )
    if lifespan.emitter is None:
        raise RuntimeError("the Dispytch app has no emitter: App([...], emitters=[emitter])")
    return lifespan.emitter


Emitter = Annotated[EventEmitter, Depends(current_emitter)]
"""A route parameter annotated `Emitter` receives the app's emitter."""

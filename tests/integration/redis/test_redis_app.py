"""An App on Redis Streams: one app-scoped dependency shared by two listeners."""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from redis_helpers import Note, NoteBody, fresh, wait_until

from dispytch import App, Dependency, Event, EventEmitter, EventListener

pytestmark = pytest.mark.redis

EVENTS = 100


async def test_an_app_scoped_dependency_is_entered_and_exited_once_around_every_handler(
    streams_settings: dict[str, Any],
) -> None:
    topic, log = fresh("app-scope"), []

    async def pool() -> AsyncIterator[list[str]]:
        log.append("enter")
        yield log
        log.append("exit")

    listeners = [
        EventListener.from_backend("redis", group=fresh(name), **streams_settings)
        for name in ("mailer", "audit")
    ]
    for name, listener in zip(("mailer", "audit"), listeners, strict=True):

        @listener.handler(topic=topic, event=Note.__event_type__)
        async def handle(
            event: Event[NoteBody],
            shared: Annotated[list[str], Dependency(pool, scope="app")],
            who: str = name,
        ) -> None:
            shared.append(f"{who} start {event.body.n}")
            await asyncio.sleep(0.01)
            shared.append(f"{who} end {event.body.n}")

    emitter = EventEmitter.from_backend("redis", **streams_settings)
    app = App(listeners, [emitter], stop_timeout=30)
    await app.start()
    await emitter.emit_many(Note(stream=topic, n=n) for n in range(EVENTS))

    async def handled_half() -> bool:
        return sum(" end " in line for line in log) >= EVENTS

    await wait_until(f"{EVENTS} of the {2 * EVENTS} handler calls finished", handled_half)
    await app.stop()  # handlers are still running: they finish before the pool exits

    assert log.count("enter") == 1
    assert log.count("exit") == 1
    assert log[0] == "enter"
    assert log[-1] == "exit"
    starts = {line.replace(" start ", " ") for line in log if " start " in line}
    ends = {line.replace(" end ", " ") for line in log if " end " in line}
    assert starts == ends, "every handler that started finished before the pool exited"
    assert {line.split()[0] for line in starts} == {"mailer", "audit"}, "both listeners used it"

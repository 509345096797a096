"""dispytch.fastapi: an App started and stopped with a FastAPI application, its emitter
handed to routes, a listener crash surfaced; driven through httpx's ASGI transport and
asgi-lifespan's LifespanManager."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import BaseModel

from dispytch import App, Event, EventBase, EventEmitter, EventListener
from dispytch.fastapi import Emitter, Lifespan
from dispytch.listener.consumer import Consumer, Message
from dispytch.testing import TestClient

WAIT = 10.0


class NewUser(BaseModel):
    user_id: int
    email: str


class UserCreated(EventBase):
    __topic__ = "users"
    __event_type__ = "user_created"

    user_id: int
    email: str


def users_api(app: App) -> FastAPI:
    api = FastAPI(lifespan=Lifespan(app))

    @api.post("/users", status_code=202)
    async def create_user(user: NewUser, emitter: Emitter) -> dict[str, int]:
        await emitter.emit(UserCreated(user_id=user.user_id, email=user.email))
        return {"user_id": user.user_id}

    return api


async def _until(condition: Any) -> None:
    """Return once `await condition()` holds; fail after WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await condition():
        assert loop.time() < deadline, f"{condition.__name__} did not hold within {WAIT}s"
        await asyncio.sleep(0.005)


async def test_a_post_emits_the_handler_runs_and_shutdown_drains_it() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    listener = EventListener.from_url(url, group="mails")
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[int] = []

    @listener.handler(topic="users", event="user_created")
    async def welcome(event: Event[NewUser]) -> None:
        started.set()
        await release.wait()
        finished.append(event.body.user_id)

    app = App([listener], [EventEmitter.from_url(url)])
    manager = LifespanManager(users_api(app))
    await manager.__aenter__()
    transport = httpx.ASGITransport(app=manager.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        response = await http.post("/users", json={"user_id": 1, "email": "a@b.c"})
    assert response.status_code == 202
    await asyncio.wait_for(started.wait(), WAIT)

    shutdown = asyncio.create_task(manager.__aexit__(None, None, None))

    async def stopping() -> bool:
        return not (await app.health()).ready

    await _until(stopping)
    assert not shutdown.done()  # waiting for the handler in flight
    assert finished == []
    release.set()
    await asyncio.wait_for(shutdown, WAIT)
    assert finished == [1]
    assert not app.running
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left to be destroyed


async def test_the_lifespan_takes_listeners_and_emitters_too() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    listener = EventListener.from_url(url, group="mails")
    seen: list[str] = []

    @listener.handler(topic="users", event="user_created")
    async def welcome(event: Event[NewUser]) -> None:
        seen.append(event.body.email)

    api = FastAPI(lifespan=Lifespan(listeners=[listener], emitters=[EventEmitter.from_url(url)]))

    @api.post("/users")
    async def create_user(user: NewUser, emitter: Emitter) -> None:
        await emitter.emit(UserCreated(user_id=user.user_id, email=user.email))

    async with LifespanManager(api) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            await http.post("/users", json={"user_id": 2, "email": "x@y.z"})

        async def handled() -> bool:
            return seen == ["x@y.z"]

        await _until(handled)


class _FailingConsumer(Consumer):
    """Consumes nothing until `fail` is set, then loses its connection."""

    def __init__(self) -> None:
        self.fail = asyncio.Event()

    async def listen(self) -> AsyncIterator[Message]:
        await self.fail.wait()
        raise ConnectionResetError("the broker went away")
        yield Message("never", b"")  # an async generator

    def ack(self, msg: Message) -> None:
        pass


async def test_a_listener_crash_is_logged_makes_the_app_unready_and_raises_at_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = _FailingConsumer()
    listener = EventListener(consumer)

    @listener.handler(topic="users", event="user_created")
    async def welcome(event: Event[NewUser]) -> None:
        pass

    app = App([listener])
    lifespan = Lifespan(app)
    manager = LifespanManager(FastAPI(lifespan=lifespan))
    await manager.__aenter__()
    assert (await app.health()).ready
    consumer.fail.set()

    async def crashed() -> bool:
        return lifespan.crash is not None

    await _until(crashed)
    assert not (await app.health()).ready
    with pytest.raises(ConnectionResetError, match="the broker went away"):
        await manager.__aexit__(None, None, None)
    assert "stopped consuming while the API runs" in caplog.text
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_an_app_under_a_test_client_serves_routes_with_no_broker() -> None:
    """The app is configured for Kafka; the TestClient runs it in memory and the FastAPI
    lifespan leaves the running app to it."""
    listener = EventListener.from_url("kafka://prod:9092", group="mails")
    emitter = EventEmitter.from_url("kafka://prod:9092")

    @listener.handler(topic="users", event="user_created")
    async def welcome(event: Event[NewUser]) -> None:
        pass

    app = App([listener], [emitter])
    async with TestClient(app) as client, LifespanManager(users_api(app)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            response = await http.post("/users", json={"user_id": 3, "email": "a@b.c"})
        assert response.status_code == 202
        await client.wait_settled()
        client.emitted.assert_any(UserCreated, user_id=3)
        assert client.calls(welcome)[0].body.email == "a@b.c"


async def test_the_emitter_dependency_says_when_no_lifespan_runs() -> None:
    api = FastAPI()

    @api.post("/users")
    async def create_user(user: NewUser, emitter: Emitter) -> None:
        pass

    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        with pytest.raises(RuntimeError, match=r"FastAPI\(lifespan=dispytch.fastapi.Lifespan"):
            await http.post("/users", json={"user_id": 1, "email": "a@b.c"})


def test_an_app_with_several_emitters_must_say_which_routes_get() -> None:
    app = App([], [EventEmitter.from_url("memory://"), EventEmitter.from_url("memory://")])
    with pytest.raises(TypeError, match="pass emitter="):
        Lifespan(app)


SCRIPT = """
import asyncio, gc, uuid

import httpx
from asgi_lifespan import LifespanManager

from test_fastapi import App, Event, EventEmitter, EventListener, NewUser, users_api


async def main():
    url = f"memory://{uuid.uuid4().hex}"
    listener = EventListener.from_url(url, group="mails")
    done = []

    @listener.handler(topic="users", event="user_created")
    async def welcome(event: Event[NewUser]) -> None:
        await asyncio.sleep(0.05)
        done.append(event.body.user_id)

    async with LifespanManager(users_api(App([listener], [EventEmitter.from_url(url)]))) as m:
        transport = httpx.ASGITransport(app=m.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            for user_id in range(20):
                await http.post("/users", json={"user_id": user_id, "email": "a@b.c"})
    print("handled", len(done))


asyncio.run(main(), debug=True)
gc.collect()
"""


def test_a_run_leaves_no_pending_task_behind(tmp_path: Any) -> None:
    """A whole run under `asyncio.run` in its own process, in debug mode: every handler
    finished before shutdown completed, and Python reports no destroyed pending task."""
    here = __file__.rsplit("/", 1)[0]
    run = subprocess.run(
        [sys.executable, "-X", "dev", "-c", textwrap.dedent(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=here,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "handled 20"
    assert "Task was destroyed but it is pending" not in run.stderr
    assert "was never awaited" not in run.stderr


def test_core_and_the_test_client_do_not_import_fastapi() -> None:
    code = (
        "import sys, dispytch, dispytch.app, dispytch.testing, dispytch.testing.plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "[]"

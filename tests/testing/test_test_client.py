"""TestClient: an app or listeners configured for a real backend, run on a private in-memory
broker, with handler calls, emitted events and dead letters recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from dispytch import App, Dependency, Event, EventBase, EventEmitter, EventListener
from dispytch.backends.requirements import CapabilityError
from dispytch.testing import TestClient


class UserCreated(EventBase):
    __topic__ = "users"
    __event_type__ = "user_created"

    user_id: int
    email: str


class WelcomeSent(EventBase):
    __topic__ = "mails"
    __event_type__ = "welcome_sent"

    user_id: int


class User(BaseModel):
    user_id: int
    email: str


class Mailer:
    """Would talk to an SMTP server."""

    async def send(self, to: str, text: str) -> None:
        raise ConnectionError("no SMTP server in tests")


def mailer() -> Mailer:
    return Mailer()


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, to: str, text: str) -> None:
        self.sent.append((to, text))


def welcome_service(url: str = "kafka://prod:9092") -> tuple[EventListener, EventEmitter, Any]:
    """The service of the issue: a Kafka listener in group `mails` that mails new users and
    emits `WelcomeSent`."""
    listener = EventListener.from_url(url, group="mails")
    emitter = EventEmitter.from_url(url)

    @listener.handler(topic="users", event="user_created")
    async def welcome(event: Event[User], mail: Annotated[Mailer, Dependency(mailer)]) -> None:
        await mail.send(event.body.email, "welcome")
        await emitter.emit(WelcomeSent(user_id=event.body.user_id))

    return listener, emitter, welcome


async def test_welcome(dispytch_client: Any, no_network: list[str]) -> None:
    """The issue's test, with a listener built for Kafka and no broker running."""
    listener, emitter, welcome = welcome_service()
    fake_mailer = FakeMailer()
    async with dispytch_client(
        listener, emitters=[emitter], overrides={mailer: fake_mailer}
    ) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
        assert client.calls(welcome)[0].body.email == "a@b.c"
        client.emitted.assert_any(WelcomeSent, user_id=1)
        assert client.dead_letters == []
    assert fake_mailer.sent == [("a@b.c", "welcome")]
    assert no_network == []


async def test_the_guard_sees_a_real_kafka_listener_connect(no_network: list[str]) -> None:
    """Without the TestClient the same listener does try to reach prod:9092, so the guard
    above would have caught a connection."""
    listener, _, _ = welcome_service()
    with pytest.raises(Exception):  # noqa: B017, PT011 - aiokafka wraps the refusal its own way
        await asyncio.wait_for(listener.start(), 30)
    await listener.stop()
    assert any("prod" in attempt for attempt in no_network), no_network


async def test_the_listener_is_given_back_its_backend_after_the_client() -> None:
    listener, emitter, _ = welcome_service()
    backend, producer = listener.backend, emitter.producer
    async with TestClient(listener, emitters=[emitter], overrides={mailer: FakeMailer()}):
        assert listener.backend is not backend
        assert emitter.producer is not producer
    assert listener.backend is backend
    assert listener.consumer is None
    assert emitter.producer is producer
    assert listener.dependency_overrides == {}
    assert listener.instrumentation == []
    assert listener.middleware == []
    assert emitter.instrumentation == []


async def test_a_failed_assertion_lists_what_was_emitted() -> None:
    listener, emitter, _ = welcome_service()
    async with TestClient(listener, emitters=[emitter], overrides={mailer: FakeMailer()}) as client:
        await client.emit(UserCreated(user_id=7, email="x@y.z"))
        with pytest.raises(AssertionError) as failure:
            client.emitted.assert_any(WelcomeSent, user_id=1)
    message = str(failure.value)
    assert "no WelcomeSent(user_id=1) was emitted" in message
    assert "WelcomeSent(user_id=7) to 'mails'" in message
    assert "differs in user_id: 7 != 1" in message


async def test_an_invalid_body_is_dead_lettered_with_reason_invalid() -> None:
    listener, emitter, welcome = welcome_service()

    class UserCreatedWithoutEmail(EventBase):
        __topic__ = "users"
        __event_type__ = "user_created"

        user_id: int

    async with TestClient(listener, emitters=[emitter], overrides={mailer: FakeMailer()}) as client:
        await client.emit(UserCreatedWithoutEmail(user_id=3))
        [letter] = client.dead_letters
        assert client.calls(welcome) == []
        assert client.emitted == []
    assert letter.reason == "invalid"
    assert "email" in str(letter.error)
    assert letter.topic == "users"
    assert letter.event_type == "user_created"
    assert letter.settled_as == "dead_letter"  # published to users.dlq, as configured


async def test_an_undecodable_payload_is_dead_lettered_with_its_decode_error() -> None:
    listener, emitter, _ = welcome_service()
    async with TestClient(listener, emitters=[emitter], overrides={mailer: FakeMailer()}) as client:
        await client.send("users", b"\xff not an envelope")
    [letter] = client.dead_letters
    assert letter.reason == "undecodable"
    assert letter.handler is None
    assert letter.error is not None
    assert letter.payload == b"\xff not an envelope"


async def test_a_handler_failing_after_its_retries_raises_in_the_test(
    no_network: list[str],
) -> None:
    listener = EventListener.from_url("amqp://guest:guest@prod:5672/", group="mails")
    attempts: list[int] = []

    @listener.handler(topic="users", event="user_created", retries=2, retry_interval=0)
    async def flaky(event: Event[User]) -> None:
        attempts.append(event.body.user_id)
        raise RuntimeError(f"cannot mail user {event.body.user_id}")

    async with TestClient(listener) as client:
        with pytest.raises(RuntimeError, match="cannot mail user 5"):
            await client.emit(UserCreated(user_id=5, email="a@b.c"))
        assert [call.attempt for call in client.calls(flaky)] == [1, 2, 3]
        assert all(isinstance(call.error, RuntimeError) for call in client.calls(flaky))
        await client.wait_settled(raise_errors=False)
        [letter] = client.dead_letters
    assert attempts == [5, 5, 5]
    assert no_network == []  # configured for RabbitMQ, never reached
    assert letter.reason == "handler_failed"
    assert letter.attempts == 3
    assert letter.handler is not None
    assert letter.handler.endswith("flaky")


async def test_without_raise_errors_the_failure_is_a_dead_letter(no_network: list[str]) -> None:
    listener = EventListener.from_url("redis://prod:6379/0", group="mails")

    @listener.handler(topic="users", event="user_created")
    async def broken(event: Event[User]) -> None:
        raise ValueError("broken")

    async with TestClient(listener, raise_errors=False) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
    [letter] = client.dead_letters
    assert isinstance(letter.error, ValueError)
    assert letter.reason == "handler_failed"
    assert no_network == []  # configured for Redis, never reached


async def test_a_nacking_listener_raises_rather_than_hangs() -> None:
    """With no dead-letter topic a failed message is nacked back for redelivery, as the
    configured backend would; the test hears of the failure at once."""
    listener = EventListener.from_url(
        "kafka://prod:9092", group="g", listener_options={"dead_letter_topic": None}
    )

    @listener.handler(topic="users", event="user_created")
    async def broken(event: Event[User]) -> None:
        raise LookupError("user not found")

    async with TestClient(listener) as client:
        with pytest.raises(LookupError):
            await client.emit(UserCreated(user_id=1, email="a@b.c"))
        assert client.dead_letters == []


def _recording_listener(url: str, group: str, seen: list[tuple[str, int]]) -> EventListener:
    listener = EventListener.from_url(url, group=group, listener_options={"max_in_flight": 1})

    @listener.handler(topic="users", event="user_created")
    async def record(event: Event[User]) -> None:
        seen.append((group, event.body.user_id))

    return listener


async def test_listeners_in_different_groups_each_get_the_event() -> None:
    seen: list[tuple[str, int]] = []
    billing = _recording_listener("kafka://prod:9092", "billing", seen)
    mails = _recording_listener("kafka://prod:9092", "mails", seen)
    async with TestClient([billing, mails]) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
    assert sorted(seen) == [("billing", 1), ("mails", 1)]


async def test_listeners_in_one_group_share_the_events() -> None:
    """Each takes one message at a time, and each handler waits until two are in flight:
    both events are handled once, one by each listener."""
    handled: list[tuple[int, int]] = []
    both_in_flight = asyncio.Event()
    in_flight = 0

    def worker(number: int) -> EventListener:
        listener = EventListener.from_url(
            "kafka://prod:9092", group="mails", listener_options={"max_in_flight": 1}
        )

        @listener.handler(topic="users", event="user_created")
        async def take(event: Event[User]) -> None:
            nonlocal in_flight
            in_flight += 1
            if in_flight == 2:
                both_in_flight.set()
            await both_in_flight.wait()
            handled.append((number, event.body.user_id))

        return listener

    async with TestClient([worker(1), worker(2)], timeout=30) as client:
        await asyncio.gather(
            client.emit(UserCreated(user_id=1, email="a@b.c")),
            client.emit(UserCreated(user_id=2, email="d@e.f")),
        )
    assert sorted(user for _, user in handled) == [1, 2]
    assert sorted(number for number, _ in handled) == [1, 2]


async def test_without_consumer_groups_every_listener_gets_every_event() -> None:
    """Redis pub/sub has no consumer groups; the stand-in keeps that."""
    seen: list[tuple[str, int]] = []
    url = "redis://prod:6379/0?mode=pubsub"
    first = _recording_listener(url, "mails", seen)
    second = _recording_listener(url, "mails", seen)
    async with TestClient([first, second]) as client:
        await client.emit(UserCreated(user_id=4, email="a@b.c"))
    assert seen == [("mails", 4), ("mails", 4)]


def session_store() -> str:
    raise AssertionError("the real store is never opened in tests")


async def connection(store: Annotated[str, Dependency(session_store)]) -> str:
    return f"connection to {store}"


@asynccontextmanager
async def pool() -> AsyncIterator[str]:
    raise AssertionError("the real pool is never opened in tests")
    yield "never"


async def test_overrides_replace_nested_and_app_scoped_dependencies() -> None:
    entered: list[str] = []
    listener = EventListener.from_url("amqp://prod/", group="orders")
    got: list[tuple[str, str]] = []

    @listener.handler(topic="users", event="user_created")
    async def handle(
        event: Event[User],
        conn: Annotated[str, Dependency(connection)],
        shared: Annotated[str, Dependency(pool, scope="app")],
    ) -> None:
        got.append((conn, shared))

    @asynccontextmanager
    async def fake_pool() -> AsyncIterator[str]:
        entered.append("enter")
        yield "fake pool"
        entered.append("exit")

    app = App([listener])
    overrides = {session_store: "memory store", pool: fake_pool}
    async with TestClient(app, overrides=overrides) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
        await client.emit(UserCreated(user_id=2, email="a@b.c"))
        assert entered == ["enter"]
    assert entered == ["enter", "exit"]
    assert got == [("connection to memory store", "fake pool")] * 2
    assert app.dependency_overrides == {}


async def test_an_app_keeps_its_lifespan_middleware_and_emitters() -> None:
    listener = EventListener.from_url("kafka://prod:9092", group="audit")
    emitter = EventEmitter.from_url("kafka://prod:9092")
    order: list[str] = []

    async def tag(ctx: Any, call_next: Any) -> Any:
        order.append(f"middleware saw {ctx.event.body.user_id}")
        return await call_next(ctx)

    listener.add_middleware(tag)

    @listener.handler(topic="users", event="user_created")
    async def audit(event: Event[User]) -> None:
        order.append("handler")
        await app.emitters[0].emit(WelcomeSent(user_id=event.body.user_id))

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        order.append("lifespan entered")
        yield
        order.append("lifespan left")

    app = App([listener], [emitter], lifespan=lifespan)
    async with TestClient(app) as client:
        await client.emit(UserCreated(user_id=9, email="a@b.c"))
        client.emitted.assert_any(WelcomeSent, user_id=9)
    assert order == ["lifespan entered", "middleware saw 9", "handler", "lifespan left"]
    assert listener.middleware == [tag]


async def test_calls_of_a_function_that_is_no_handler_say_which_are() -> None:
    listener, emitter, _ = welcome_service()
    async with TestClient(listener, emitters=[emitter]) as client:
        with pytest.raises(ValueError, match=r"welcome_service\.<locals>\.welcome"):
            client.calls(mailer)


async def test_a_listener_given_its_own_consumer_runs_on_the_stand_in() -> None:
    from dispytch.listener.consumer import Consumer, Message

    class Broken(Consumer):
        async def listen(self) -> AsyncIterator[Message]:
            raise OSError("the consumer lost its socket")
            yield Message("never", b"")

        def ack(self, msg: Message) -> None:
            pass

    listener = EventListener(Broken())

    @listener.handler(topic="users", event="user_created")
    async def handle(event: Event[User]) -> None:
        pass

    async with TestClient(listener) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
    assert listener.consumer is not None
    assert type(listener.consumer) is Broken
    assert client.calls(handle)[0].body.user_id == 1


def test_a_module_level_listener_serves_tests_on_different_event_loops() -> None:
    """pytest-asyncio gives each test its own loop; the same listener and emitter, defined
    once in the module, run under a client in each."""
    listener, emitter, _ = welcome_service()

    async def one_test(user_id: int) -> None:
        async with TestClient(listener, emitters=[emitter], overrides={mailer: FakeMailer()}) as c:
            await c.emit(UserCreated(user_id=user_id, email="a@b.c"))
            c.emitted.assert_any(WelcomeSent, user_id=user_id)

    for user_id in (1, 2, 3):
        asyncio.run(one_test(user_id))


async def test_a_listener_whose_consumer_fails_fails_the_next_emit() -> None:
    """The in-memory broker fails the consumer waiting on it, as a lost connection would:
    the pull loop crashes, and the test hears of it instead of waiting for handlers."""
    listener, emitter, welcome = welcome_service()
    async with TestClient(listener, emitters=[emitter], overrides={mailer: FakeMailer()}) as client:
        group = client.broker.groups["mails"]
        for _ in range(1000):  # until the consumer waits on the broker
            if group.waiters:
                break
            await asyncio.sleep(0.001)
        for waiter in group.waiters:
            waiter.set_exception(ConnectionResetError("the broker went away"))
        with pytest.raises(ConnectionResetError, match="the broker went away"):
            await client.emit(UserCreated(user_id=1, email="a@b.c"))
        assert client.calls(welcome) == []


async def test_native_dead_lettering_is_kept_where_the_broker_has_it() -> None:
    listener = EventListener.from_url(
        "amqp://guest:guest@prod:5672/",
        group="mails",
        listener_options={"native_dead_letter": True},
    )

    @listener.handler(topic="users", event="user_created")
    async def broken(event: Event[User]) -> None:
        raise ValueError("broken")

    async with TestClient(listener, raise_errors=False) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
    [letter] = client.dead_letters
    assert letter.settled_as == "native_dead_letter"
    assert isinstance(letter.error, ValueError)


async def test_a_listener_the_backend_cannot_serve_fails_as_in_production() -> None:
    """Kafka has no native dead-lettering: the listener is refused at start, in the test
    as it would be in production."""
    listener = EventListener.from_url(
        "kafka://prod:9092", group="mails", listener_options={"native_dead_letter": True}
    )

    @listener.handler(topic="users", event="user_created")
    async def handle(event: Event[User]) -> None:
        pass

    with pytest.raises(CapabilityError, match="native_dead_letter"):
        async with TestClient(listener):
            pass
    assert listener.backend is not None
    assert listener.backend.name == "kafka"  # given back, though it failed to start


async def test_a_nacked_message_is_redelivered_until_max_deliveries() -> None:
    listener = EventListener.from_url(
        "kafka://prod:9092",
        group="mails",
        listener_options={
            "dead_letter_topic": None,
            "max_deliveries": 3,
            "redelivery_delay": 0,
        },
    )

    @listener.handler(topic="users", event="user_created")
    async def broken(event: Event[User]) -> None:
        raise ValueError(f"attempt {event.attempt}")

    async with TestClient(listener, raise_errors=False) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
    assert [call.event.attempt for call in client.calls(broken)] == [1, 2, 3]
    [letter] = client.dead_letters
    assert letter.reason == "too_many_deliveries"
    assert letter.settled_as == "ack"  # no destination: logged and acked, as configured

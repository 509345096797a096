"""Point 2 (the 0.10 API: events, handlers, groups, Event[Body], metadata) and point 4's topic
templates."""

import json
import time
import uuid

import pytest
from pydantic import BaseModel, Field
from seed_fakes import KeyConfig, SyncAckConsumer, Wire, WireProducer
from support import WAIT

import dispytch
from dispytch import (
    Context,
    EmitContext,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    HandlerGroup,
    Message,
)
from dispytch.backends.memory import MemoryEventConfig
from dispytch.event import EventTopicError
from dispytch.middleware import CallNext
from dispytch.testing import Probe, running


class UserCreated(EventBase):
    __topic__ = "users.{user_id}"
    __event_type__ = "user_created"

    user_id: int
    email: str


class User(BaseModel):
    user_id: int
    email: str


def test_the_documented_0_10_names_are_exported() -> None:
    documented = {"EventBase", "EventEmitter", "EventListener", "HandlerGroup", "Event"}
    assert documented | {"Dependency", "TopicSegment"} <= set(dispytch.__all__)


# -- EventBase: topic, type, backend config --------------------------------------------------


def test_topic_is_formatted_from_the_events_fields() -> None:
    assert UserCreated(user_id=42, email="a@b.c").topic() == "users.42"


def test_topic_naming_a_missing_field_is_a_clear_error() -> None:
    class Broken(EventBase):
        __topic__ = "users.{account_id}"
        __event_type__ = "broken"

        user_id: int

    with pytest.raises(EventTopicError, match=r"account_id.*\['id', 'user_id'\]"):
        Broken(user_id=1).topic()


async def test_emitting_an_event_with_a_bad_topic_raises_before_sending(wire: Wire) -> None:
    class Broken(EventBase):
        __topic__ = "users.{account_id}"
        __event_type__ = "broken"

        user_id: int

    with pytest.raises(EventTopicError, match="account_id"):
        await EventEmitter(WireProducer(wire)).emit(Broken(user_id=1))
    assert wire.sent == []


def test_an_event_without_topic_says_so() -> None:
    class Topicless(EventBase):
        __event_type__ = "topicless"

    with pytest.raises(EventTopicError, match="Topicless has no __topic__"):
        Topicless().topic()


def test_event_type_defaults_to_the_class_name() -> None:
    class Untyped(EventBase):
        __topic__ = "t"

    assert (Untyped.event_type(), UserCreated.event_type()) == ("Untyped", "user_created")


class Keyed(EventBase):
    __topic__ = "keyed"
    __event_type__ = "keyed"
    __backend_config__ = KeyConfig(key="from-class")

    n: int = 0


async def test_class_backend_config_reaches_the_producer(wire: Wire) -> None:
    await EventEmitter(WireProducer(wire)).emit(Keyed())

    assert wire.sent[0].config == KeyConfig(key="from-class")


async def test_backend_config_given_to_the_constructor_overrides_the_class(wire: Wire) -> None:
    await EventEmitter(WireProducer(wire)).emit(Keyed(__backend_config__=KeyConfig(key="mine")))

    assert wire.sent[0].config == KeyConfig(key="mine")
    assert Keyed.__backend_config__ == KeyConfig(key="from-class"), "the class keeps its own"


async def test_backend_config_assigned_on_an_instance_overrides_the_class(wire: Wire) -> None:
    event = Keyed()
    event.__backend_config__ = KeyConfig(key="assigned")

    await EventEmitter(WireProducer(wire)).emit(event)

    assert wire.sent[0].config == KeyConfig(key="assigned")
    assert event.backend_config() == KeyConfig(key="assigned")


def test_backend_config_is_not_part_of_the_body() -> None:
    event = Keyed(n=1, __backend_config__=KeyConfig(key="k"))

    assert event.model_dump() == {"n": 1}


# -- handlers and Event[Body] ----------------------------------------------------------------


async def test_handler_receives_event_with_id_topic_type_body_timestamp(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="users.{user_id}", event="user_created")
    async def record(event: Event[User]) -> None:
        probe.add(event)

    before = int(time.time() * 1000)
    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(UserCreated(user_id=1, email="ada@example.com"))
        [event] = await probe.wait_for(1, WAIT)
    after = int(time.time() * 1000)

    assert uuid.UUID(event.id)
    assert (event.topic, event.type) == ("users.1", "user_created")
    assert event.body == User(user_id=1, email="ada@example.com")
    assert before <= event.timestamp <= after, "epoch milliseconds at emit"


async def test_untyped_event_gets_the_body_as_decoded(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="users.{user_id}", event="user_created")
    async def record(event: Event) -> None:  # type: ignore[type-arg]
        probe.add(event.body)

    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(UserCreated(user_id=1, email="a@b.c"))
        assert await probe.wait_for(1, WAIT) == [{"user_id": 1, "email": "a@b.c"}]


async def test_aliased_fields_round_trip_through_the_same_model(wire: Wire) -> None:
    class Renamed(EventBase):
        __topic__ = "renamed"
        __event_type__ = "renamed"

        user_id: int = Field(alias="userId")

    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="renamed", event="renamed")
    async def record(event: Event[Renamed]) -> None:
        probe.add(event.body)

    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(Renamed(userId=5))
        [body] = await probe.wait_for(1, WAIT)

    assert body.user_id == 5
    assert b'"userId": 5' in wire.sent[0].payload, "the body is written by alias, as in 0.10"


async def test_handler_sees_headers_key_and_attempt(memory_url: str) -> None:
    listener = EventListener.from_url(memory_url, group="g")
    seen = Probe()

    async def add_trace(ctx: EmitContext, call_next: CallNext[EmitContext]) -> None:
        ctx.message.headers["traceparent"] = "00-abc-01"
        await call_next(ctx)

    @listener.handler(topic="users.{user_id}", event="user_created")
    async def record(event: Event[User], ctx: Context, msg: Message) -> None:
        seen.add((event.headers, event.key, event.attempt))
        seen.add((ctx.message.headers, ctx.message.key, ctx.message.attempt))
        seen.add((msg.headers, msg.key, msg.attempt))

    emitter = EventEmitter.from_url(memory_url, emitter_options={"middleware": [add_trace]})
    async with running(listener), emitter:
        config = MemoryEventConfig(key="user-1")
        await emitter.emit(UserCreated(user_id=1, email="a@b.c", __backend_config__=config))
        views = await seen.wait_for(3, WAIT)

    assert views == [({"traceparent": "00-abc-01"}, "user-1", 1)] * 3


# -- HandlerGroup --------------------------------------------------------------------------


async def test_handler_group_defaults_apply_and_can_be_overridden(wire: Wire) -> None:
    class AdminCreated(UserCreated):
        __topic__ = "admins.{user_id}"

    group = HandlerGroup(default_topic="users.{user_id}", default_event="user_created")
    probe = Probe()

    @group.handler()
    async def by_default(event: Event[User]) -> None:
        probe.add(("default", event.topic))

    @group.handler(topic="admins.{user_id}")
    async def other_topic(event: Event[User]) -> None:
        probe.add(("override", event.topic))

    listener = EventListener(SyncAckConsumer(wire))
    listener.add_handler_group(group)

    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(UserCreated(user_id=1, email="a@b.c"))
        await probe.wait_for(1, WAIT)
        await emitter.emit(AdminCreated(user_id=2, email="d@e.f"))
        items = await probe.wait_for(2, WAIT)

    assert items == [("default", "users.1"), ("override", "admins.2")]


def test_a_handler_without_topic_is_rejected_when_declared() -> None:
    group = HandlerGroup(default_event="user_created")

    async def handle(event: Event[User]) -> None: ...

    with pytest.raises(TypeError, match="no topic"):
        group.handler()(handle)


def test_a_handler_without_event_type_is_rejected_when_declared() -> None:
    group = HandlerGroup(default_topic="users")

    async def handle(event: Event[User]) -> None: ...

    with pytest.raises(TypeError, match="no event type"):
        group.handler()(handle)


def test_a_sync_handler_is_rejected_when_declared() -> None:
    listener = EventListener()

    def handle(event: Event[User]) -> None: ...

    with pytest.raises(TypeError, match="must be an async function"):
        listener.handler(topic="users", event="user_created")(handle)


# -- event ids -------------------------------------------------------------------------------


def test_every_event_gets_a_fresh_uuid4_string_id() -> None:
    first, second = UserCreated(user_id=1, email="a@b.c"), UserCreated(user_id=1, email="a@b.c")

    assert isinstance(first.id, str)
    assert first.id != second.id
    assert uuid.UUID(first.id).version == 4
    assert str(uuid.UUID(first.id)) == first.id, "written as str(uuid.uuid4()) writes it"


def test_an_id_can_be_given_or_assigned_and_is_not_part_of_the_body() -> None:
    event = UserCreated(id="abc", user_id=1, email="a@b.c")
    assert event.id == "abc"

    event.id = "order-7-created"
    assert event.id == "order-7-created"
    assert event.model_dump() == {"user_id": 1, "email": "a@b.c"}


async def test_the_envelope_and_the_handler_carry_the_events_id(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="users.{user_id}", event="user_created")
    async def record(event: Event[User]) -> None:
        probe.add(event)

    event = UserCreated(user_id=1, email="a@b.c")
    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(event)
        [received] = await probe.wait_for(1, WAIT)

    envelope = json.loads(wire.sent[0].payload)
    assert envelope["id"] == event.id == received.id
    assert envelope["body"] == {"user_id": 1, "email": "a@b.c"}, "no id in the body"


async def test_emitting_one_event_twice_sends_the_same_id(wire: Wire) -> None:
    event = UserCreated(user_id=1, email="a@b.c")
    emitter = EventEmitter(WireProducer(wire))

    await emitter.emit(event)
    await emitter.emit(event)
    await emitter.emit_many([event])

    assert [json.loads(m.payload)["id"] for m in wire.sent] == [event.id] * 3


async def test_an_emitted_event_class_as_the_handlers_body_type_has_the_envelopes_id(
    wire: Wire,
) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="users.{user_id}", event="user_created")
    async def record(event: Event[UserCreated]) -> None:
        probe.add(event)

    sent = UserCreated(user_id=1, email="a@b.c")
    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(sent)
        [received] = await probe.wait_for(1, WAIT)

    assert received.body.id == received.id == sent.id
    assert received.body == sent


def test_an_event_class_declaring_its_own_id_field_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Order declares a field named 'id'.*Rename the field"):

        class Order(EventBase):
            __topic__ = "orders"

            id: int
            total: float

"""Point 4: topic patterns with `{name}` segments and `*` wildcards, a configurable delimiter,
routing by event type with a catch-all, and fan-out to every matching handler."""

from typing import Annotated

import pytest
from pydantic import BaseModel
from seed_fakes import SyncAckConsumer, Wire, WireProducer
from support import WAIT, dead_letters, eventually

from dispytch import (
    ANY_EVENT,
    DependencyError,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    HandlerGroup,
    TopicSegment,
)
from dispytch.routing import TopicPatternError
from dispytch.testing import Probe, running


class Moved(EventBase):
    __topic__ = "{region}.{user_id}.moved"
    __event_type__ = "moved"

    region: str
    user_id: int


class Deleted(EventBase):
    __topic__ = "{region}.{user_id}.deleted"
    __event_type__ = "deleted"

    region: str
    user_id: int


class Body(BaseModel):
    user_id: int


async def emit_all(wire: Wire, *events: EventBase) -> None:
    emitter = EventEmitter(WireProducer(wire))
    for event in events:
        await emitter.emit(event)


async def test_segments_are_extracted_and_converted(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="{region}.{user_id}.moved", event="moved")
    async def record(
        region: Annotated[str, TopicSegment()], user_id: Annotated[int, TopicSegment()]
    ) -> None:
        probe.add((region, user_id))

    async with running(listener):
        await emit_all(wire, Moved(region="eu", user_id=7))
        assert await probe.wait_for(1, WAIT) == [("eu", 7)]


async def test_segment_aliases_in_annotation_and_default_form(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="{region}.{user_id}.moved", event="moved")
    async def record(
        uid: Annotated[int, TopicSegment(alias="user_id")],
        where: str = TopicSegment(alias="region"),  # type: ignore[assignment]
    ) -> None:
        probe.add((where, uid))

    async with running(listener):
        await emit_all(wire, Moved(region="us", user_id=3))
        assert await probe.wait_for(1, WAIT) == [("us", 3)]


async def test_a_segment_that_does_not_convert_is_dead_lettered_as_invalid(
    wire: Wire, dlq_wire: Wire
) -> None:
    listener = EventListener(SyncAckConsumer(wire), producer=WireProducer(dlq_wire))
    probe = Probe()

    @listener.handler(topic="users.{user_id}", event="moved", retries=3, retry_interval=0)
    async def record(user_id: Annotated[int, TopicSegment()]) -> None:
        probe.add(user_id)

    async with running(listener):
        wire.put("users.abc", b'{"id": "1", "type": "moved", "body": {}, "timestamp": 1}')
        await eventually(lambda: len(dlq_wire.sent) == 1)

    [(_, letter)] = dead_letters(dlq_wire)
    assert (letter.reason, letter.attempts) == ("invalid", 1), "invalid input is not retried"
    assert "user_id" in letter.error_message
    assert probe.items == []


def test_a_segment_the_topic_lacks_is_reported_at_registration() -> None:
    listener = EventListener()

    async def handle(account: Annotated[int, TopicSegment()]) -> None: ...

    with pytest.raises(DependencyError, match=r"\{account\}.*\{user_id\}"):
        listener.handler(topic="users.{user_id}", event="moved")(handle)


def test_a_group_handler_with_an_unknown_segment_fails_when_added() -> None:
    group = HandlerGroup(default_topic="users.{user_id}", default_event="moved")

    @group.handler()
    async def handle(account: Annotated[int, TopicSegment(alias="account_id")]) -> None: ...

    with pytest.raises(DependencyError, match="account_id"):
        EventListener().add_handler_group(group)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("users..created", "empty segment"),
        ("users.id{user_id}", "mixes text"),
        ("users.*x", "mixes text"),
        ("{user_id}.{user_id}", "more than once"),
    ],
)
def test_malformed_patterns_are_rejected_at_registration(pattern: str, problem: str) -> None:
    listener = EventListener()

    async def handle() -> None: ...

    with pytest.raises(TopicPatternError, match=problem):
        listener.handler(topic=pattern, event="moved")(handle)


async def test_a_wildcard_matches_exactly_one_segment(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="*.*.moved", event="moved")
    async def record(event: Event[Body]) -> None:
        probe.add(event.topic)

    async with running(listener):
        payload = b'{"id": "1", "type": "moved", "body": {"user_id": 1}, "timestamp": 1}'
        for topic in ("eu.moved", "eu.west.1.moved", "eu.1.moved"):
            wire.put(topic, payload)
        await probe.wait_for(1, WAIT)

    assert probe.items == ["eu.1.moved"]


async def test_the_delimiter_is_configurable(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire), topic_delimiter=":"), Probe()

    class ColonMoved(Moved):
        __topic__ = "{region}:{user_id}:moved"

    @listener.handler(topic="{region}:*:moved", event="moved")
    async def record(region: Annotated[str, TopicSegment()], event: Event[Body]) -> None:
        probe.add((region, event.body.user_id))

    async with running(listener):
        await emit_all(wire, ColonMoved(region="eu.west", user_id=5))
        assert await probe.wait_for(1, WAIT) == [("eu.west", 5)], "'.' is plain text now"


async def test_routing_by_event_type_with_a_catch_all(wire: Wire) -> None:
    listener = EventListener(SyncAckConsumer(wire))
    moves, deletes, everything = Probe(), Probe(), Probe()

    @listener.handler(topic="{region}.{user_id}.*", event="moved")
    async def on_move(event: Event[Body]) -> None:
        moves.add(event.type)

    @listener.handler(topic="{region}.{user_id}.*", event="deleted")
    async def on_delete(event: Event[Body]) -> None:
        deletes.add(event.type)

    @listener.handler(topic="{region}.{user_id}.*", event=ANY_EVENT)
    async def on_any(event: Event[Body]) -> None:
        everything.add(event.type)

    async with running(listener):
        await emit_all(wire, Moved(region="eu", user_id=1), Deleted(region="eu", user_id=1))
        await everything.wait_for(2, WAIT)
        await moves.wait_for(1, WAIT)
        await deletes.wait_for(1, WAIT)

    assert (moves.items, deletes.items) == (["moved"], ["deleted"])
    assert sorted(everything.items) == ["deleted", "moved"]


async def test_a_message_matching_several_handlers_reaches_each_and_is_acked_once(
    wire: Wire,
) -> None:
    consumer = SyncAckConsumer(wire)
    listener, probe = EventListener(consumer), Probe()

    @listener.handler(topic="{region}.{user_id}.moved", event="moved")
    async def by_segments(event: Event[Body]) -> None:
        probe.add("segments")

    @listener.handler(topic="eu.*.moved", event="moved")
    async def by_wildcard(event: Event[Body]) -> None:
        probe.add("wildcard")

    group = HandlerGroup()

    @group.handler(topic="eu.1.moved", event=ANY_EVENT)
    async def literal(event: Event[Body]) -> None:
        probe.add("literal")

    listener.add_handler_group(group)

    async with running(listener):
        await emit_all(wire, Moved(region="eu", user_id=1))
        await probe.wait_for(3, WAIT)

    assert sorted(probe.items) == ["literal", "segments", "wildcard"]
    assert len(consumer.acked) == 1


async def test_unmatched_events_are_acked_by_default(wire: Wire, dlq_wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire))

    @listener.handler(topic="{region}.{user_id}.moved", event="moved")
    async def on_move(event: Event[Body]) -> None: ...

    async with running(listener):
        await emit_all(wire, Deleted(region="eu", user_id=1))
        await eventually(lambda: len(consumer.acked) == 1)

    assert dlq_wire.sent == []


async def test_unmatched_events_can_be_dead_lettered(wire: Wire, dlq_wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire), on_unmatched="dead_letter")

    @listener.handler(topic="{region}.{user_id}.moved", event="moved")
    async def on_move(event: Event[Body]) -> None: ...

    async with running(listener):
        await emit_all(wire, Deleted(region="eu", user_id=1))
        await eventually(lambda: len(consumer.acked) == 1)

    [(topic, letter)] = dead_letters(dlq_wire)
    assert (topic, letter.reason) == ("eu.1.deleted.dlq", "unmatched")
    assert "'deleted'" in letter.error_message

"""The backend `redis` (Redis Streams) against a real server: groups, trimming, the
entry format, topic patterns, claiming, delivery counts, and clients of every shape."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis_helpers import Note, NoteBody, entry, fresh, logged, wait_until

from brokers import RedisServer
from dispytch import DeadLetter, Event, EventEmitter, EventListener, OutgoingMessage, TopicSegment
from dispytch.dead_letter import DEAD_LETTER_EVENT
from dispytch.testing import Probe, running
from dispytch_redis import RedisEventConfig, RedisStreamConsumer, RedisStreamProducer

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def recording(listener: EventListener, topic: str, probe: Probe) -> None:
    @listener.handler(topic=topic, event=Note.__event_type__)
    async def record(event: Event[NoteBody]) -> None:
        probe.add(event)


async def test_entries_carry_payload_and_headers_fields(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    topic = fresh("format")
    async with EventEmitter.from_backend("redis", **streams_settings) as emitter:
        await emitter.emit(Note(stream=topic, n=1))
    [(_, fields)] = await redis.xrange(topic)
    envelope = json.loads(fields[b"payload"])
    assert (envelope["type"], envelope["body"]) == (Note.__event_type__, {"stream": topic, "n": 1})
    assert b"headers" not in fields, "no headers field without headers"

    producer = RedisStreamProducer(redis)
    await producer.publish(OutgoingMessage(topic, b"x", headers={"traceparent": "00-a-b-01"}))
    [_, (_, fields)] = await redis.xrange(topic)
    assert json.loads(fields[b"headers"]) == {"traceparent": "00-a-b-01"}


async def test_maxlen_trims_streams_approximately(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    trimmed, per_event = fresh("maxlen"), fresh("maxlen")
    async with EventEmitter.from_backend("redis", **streams_settings, maxlen=100) as emitter:
        for n in range(1000):
            await emitter.emit(Note(stream=trimmed, n=n))
            await emitter.emit(
                Note(stream=per_event, n=n, __backend_config__=RedisEventConfig(maxlen=10))
            )
    assert 100 <= await redis.xlen(trimmed) < 1000
    assert 10 <= await redis.xlen(per_event) < await redis.xlen(trimmed)


async def test_group_created_once_at_the_configured_start(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    topic, group = fresh("start"), fresh("group")
    await redis.xadd(topic, entry(0))
    everything, only_new = Probe(), Probe()
    from_start = EventListener.from_backend("redis", group=fresh("group"), **streams_settings)
    from_now = EventListener.from_backend("redis", group=group, **streams_settings, start_id="$")
    twin = EventListener.from_backend("redis", group=group, **streams_settings, start_id="$")
    recording(from_start, topic, everything)
    recording(from_now, topic, only_new)
    recording(twin, topic, only_new)
    async with running(from_start), running(from_now), running(twin):
        async with EventEmitter.from_backend("redis", **streams_settings) as emitter:
            await emitter.emit(Note(stream=topic, n=1))
        await everything.wait_for(2)
        await only_new.wait_for(1)
    assert sorted(e.body.n for e in everything.items) == [0, 1]
    assert [e.body.n for e in only_new.items] == [1]
    assert len(await redis.xinfo_groups(topic)) == 2


async def test_wildcard_topics_match_streams_found_by_scan(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    shop = fresh("shop")
    await redis.xadd(f"{shop}.eu.orders", entry(1))
    regions = Probe()
    listener = EventListener.from_backend(
        "redis", group=fresh("group"), **streams_settings, discovery_interval=0.1
    )

    @listener.handler(topic=f"{shop}.{{region}}.orders", event=Note.__event_type__)
    async def record(event: Event[NoteBody], region: Annotated[str, TopicSegment()]) -> None:
        regions.add((region, event.body.n))

    async with running(listener), EventEmitter.from_backend("redis", **streams_settings) as emitter:
        for stream, n in [
            (f"{shop}.eu.returns", 2),
            (f"{shop}.eu.x.orders", 3),  # the glob matches it, the topic pattern does not
            (f"{shop}.us.orders", 4),
            (f"{shop}.eu.orders", 5),
        ]:
            await emitter.emit(Note(stream=stream, n=n))
        await regions.wait_for(3)
    assert sorted(regions.items) == [("eu", 1), ("eu", 5), ("us", 4)]


async def test_literal_topics_with_glob_characters_are_exact_keys(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    topic, probe = f"{fresh('odd')}[1]?", Probe()
    listener = EventListener.from_backend("redis", group=fresh("group"), **streams_settings)
    recording(listener, topic, probe)
    async with running(listener), EventEmitter.from_backend("redis", **streams_settings) as emitter:
        await emitter.emit(Note(stream=topic, n=1))
        [event] = await probe.wait_for(1)
    assert event.topic == topic


async def test_metadata_names_stream_id_and_delivery_count(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    topic, probe = fresh("meta"), Probe()
    listener = EventListener.from_backend("redis", group=fresh("group"), **streams_settings)
    recording(listener, topic, probe)
    async with running(listener):
        entry_id = await redis.xadd(topic, entry(1))
        [event] = await probe.wait_for(1)
    assert event.key == topic
    assert event.attempt == 1
    assert event.metadata == {
        "stream": topic,
        "message_id": entry_id.decode(),
        "delivery_count": 1,
    }


async def test_entries_of_a_dead_consumer_are_claimed_with_their_delivery_count(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    topic, group, probe = fresh("claim"), fresh("group"), Probe()
    await redis.xgroup_create(topic, group, id="0", mkstream=True)
    for n in range(3):
        await redis.xadd(topic, entry(n))
    # A consumer reads the entries and dies without acking them.
    await redis.xreadgroup(group, "dead-consumer", {topic: ">"}, count=3)
    listener = EventListener.from_backend("redis", group=group, **streams_settings)
    recording(listener, topic, probe)
    async with running(listener):
        events = await probe.wait_for(3)
    assert sorted(e.body.n for e in events) == [0, 1, 2]
    assert {(e.attempt, e.metadata["delivery_count"]) for e in events} == {(2, 2)}
    await wait_until("the claimed entries are acked", lambda: _pending(redis, topic, group, 0))


async def test_entry_delivered_too_often_is_dead_lettered(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    topic, group, handled, letters = fresh("poison"), fresh("group"), Probe(), Probe()
    await redis.xgroup_create(topic, group, id="0", mkstream=True)
    poison = await redis.xadd(topic, entry(1))
    await redis.xreadgroup(group, "crashing-consumer", {topic: ">"})
    for _ in range(2):  # it crashed its consumers twice more
        await redis.xclaim(topic, group, "crashing-consumer", 0, [poison])
    await redis.xadd(topic, entry(2))

    listener = EventListener.from_backend(
        "redis", group=group, listener_options={"max_deliveries": 3}, **streams_settings
    )
    recording(listener, topic, handled)
    dlq = EventListener.from_backend("redis", group=fresh("group"), **streams_settings)

    @dlq.handler(topic=f"{topic}.dlq", event=DEAD_LETTER_EVENT)
    async def collect(event: Event[DeadLetter]) -> None:
        letters.add(event.body)

    async with running(dlq), running(listener):
        [letter] = await letters.wait_for(1)
        [event] = await handled.wait_for(1)
    assert (letter.reason, letter.attempts) == ("too_many_deliveries", 4)
    assert json.loads(letter.original_payload())["body"]["n"] == 1
    assert event.body.n == 2
    await wait_until("the poison entry is acked", lambda: _pending(redis, topic, group, 0))


async def test_nacked_entry_comes_back_with_a_higher_delivery_count(
    streams_settings: dict[str, Any],
) -> None:
    topic, attempts = fresh("nack"), Probe()
    listener = EventListener.from_backend(
        "redis",
        group=fresh("group"),
        listener_options={"dead_letter_topic": None, "redelivery_delay": 0.1},
        **streams_settings,
    )

    @listener.handler(topic=topic, event=Note.__event_type__)
    async def fails_twice(event: Event[NoteBody]) -> None:
        attempts.add(event.attempt)
        if event.attempt < 3:
            raise RuntimeError("not yet")

    async with running(listener), EventEmitter.from_backend("redis", **streams_settings) as emitter:
        await emitter.emit(Note(stream=topic, n=1))
        assert await attempts.wait_for(3) == [1, 2, 3]


async def test_stop_hands_unacked_entries_over_at_once(
    redis_server: RedisServer,
) -> None:
    """With the default 30-second claim_idle, a stopped listener's unfinished entries are
    still taken over right away: stopping marks them claimable."""
    topic, group, started, finished = fresh("handover"), fresh("group"), Probe(), Probe()
    stuck = EventListener.from_backend("redis", group=group, url=redis_server.url)

    @stuck.handler(topic=topic, event=Note.__event_type__)
    async def never_finishes(event: Event[NoteBody]) -> None:
        started.add(event)
        await Probe().wait_for(1, timeout=3600)

    fresh_listener = EventListener.from_backend("redis", group=group, url=redis_server.url)
    recording(fresh_listener, topic, finished)
    async with EventEmitter.from_backend("redis", url=redis_server.url) as emitter:
        async with running(stuck, stop_timeout=0.1):
            await emitter.emit(Note(stream=topic, n=1))
            await started.wait_for(1)
        async with running(fresh_listener):
            [event] = await finished.wait_for(1, timeout=10)
    assert (event.body.n, event.attempt) == (1, 2)


@pytest.mark.parametrize(
    "options",
    [{}, {"decode_responses": True}, {"protocol": 3}, {"protocol": 3, "decode_responses": True}],
    ids=["bytes", "decoded", "resp3", "resp3-decoded"],
)
async def test_built_on_existing_clients_of_any_shape(
    redis_server: RedisServer, options: dict[str, Any]
) -> None:
    topic, probe = fresh("client"), Probe()
    producer_client = Redis.from_url(redis_server.url, **options)
    consumer_client = Redis.from_url(redis_server.url, **options)
    consumer = RedisStreamConsumer(consumer_client, fresh("group"), [topic], block=0.2)
    listener = EventListener(consumer, producer=RedisStreamProducer(producer_client))
    recording(listener, topic, probe)
    async with running(listener):
        emitter = EventEmitter(RedisStreamProducer(producer_client))
        for n in range(3):
            await emitter.emit(Note(stream=topic, n=n))
        events = await probe.wait_for(3)
    assert [(e.body.n, e.topic, e.attempt) for e in events] == [(n, topic, 1) for n in range(3)]
    await producer_client.aclose()
    await consumer_client.aclose()


async def _pending(redis: Redis, topic: str, group: str, expected: int) -> bool:
    [info] = [g for g in await redis.xinfo_groups(topic) if g["name"].decode() == group]
    return int(info["pending"]) == expected


async def test_a_key_that_is_not_a_stream_is_named_in_the_error(redis: Redis) -> None:
    topic = fresh("string")
    await redis.set(topic, "not a stream")
    consumer = RedisStreamConsumer(redis, "billing", [topic])
    with pytest.raises(ResponseError, match=rf"on stream '{re.escape(topic)}': WRONGTYPE"):
        await consumer.start()


async def test_concurrent_emits_share_pipelines_in_order_and_fail_one_by_one(
    redis: Redis, streams_settings: dict[str, Any]
) -> None:
    topic, not_a_stream = fresh("pipelined"), fresh("string")
    await redis.set(not_a_stream, "a plain string key")
    async with EventEmitter.from_backend("redis", **streams_settings) as emitter:
        outcomes = await asyncio.gather(
            *(emitter.emit(Note(stream=topic, n=n)) for n in range(2500)),
            emitter.emit(Note(stream=not_a_stream, n=-1)),
            return_exceptions=True,
        )
    *sent, refused = outcomes
    assert sent == [None] * 2500, "every emit but the refused one succeeded"
    assert isinstance(refused, ResponseError), "XADD to a string key fails that emit only"
    entries = await redis.xrange(topic)
    assert [json.loads(f[b"payload"])["body"]["n"] for _, f in entries] == list(range(2500))


class SendLoggingRedis(Redis):
    """A real client that notes each XADD it sends alone and each pipeline it opens."""

    log: list[str]

    async def xadd(self, *args: Any, **kwargs: Any) -> Any:
        self.log.append("xadd")
        return await super().xadd(*args, **kwargs)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.log.append("pipeline")
        return super().pipeline(*args, **kwargs)


async def test_a_lone_emit_is_sent_at_once_and_those_behind_it_in_one_pipeline(
    redis: Redis, redis_server: RedisServer
) -> None:
    topic = fresh("lone")
    client = SendLoggingRedis.from_url(redis_server.url)
    client.log = []
    async with EventEmitter(RedisStreamProducer(client, close_client=True)) as emitter:
        await emitter.emit(Note(stream=topic, n=0))
        assert client.log == ["xadd"], "an emit while nothing is under way skips the pipeline"
        await asyncio.gather(*(emitter.emit(Note(stream=topic, n=n)) for n in range(1, 6)))
        assert client.log == ["xadd", "xadd", "pipeline"], "the first at once, the rest behind"
    entries = await redis.xrange(topic)
    assert [json.loads(f[b"payload"])["body"]["n"] for _, f in entries] == list(range(6))


async def test_stopping_a_producer_waits_for_a_lone_send_under_way(redis: Redis) -> None:
    topic = fresh("stop")
    producer = RedisStreamProducer(redis)
    send = asyncio.ensure_future(producer.send(topic, b"last"))
    await asyncio.sleep(0)  # the send is under way: connecting, or waiting for the reply
    await producer.stop()
    assert send.done(), "stop returned before the send under way was answered"
    await send
    assert await redis.xlen(topic) == 1


class ReadLoggingRedis(Redis):
    """A real client that notes each XREADGROUP it sends and the entries it got back."""

    log: list[str]

    async def xreadgroup(self, *args: Any, **kwargs: Any) -> Any:
        self.log.append("read")
        reply = await super().xreadgroup(*args, **kwargs)
        ids = [entry_id for _, entries in reply for entry_id, _ in entries]
        if ids:
            self.log.append(f"got {len(ids)}")
        return reply


async def test_a_handler_starts_before_the_next_read_is_sent(redis_server: RedisServer) -> None:
    """XREADGROUP takes a while to send: what the last one brought is handled first, as a
    hand-written read-then-handle loop would."""
    topic, group, log = fresh("order"), fresh("group"), Probe()
    client = ReadLoggingRedis.from_url(redis_server.url)
    client.log = log.items
    await client.xgroup_create(topic, group, id="0", mkstream=True)
    listener = EventListener(RedisStreamConsumer(client, group, [topic], close_client=True))

    @listener.handler(topic=topic, event=Note.__event_type__)
    async def note(event: Event[NoteBody]) -> None:
        log.add(f"handle {event.body.n}")

    async with running(listener):
        for n in range(3):
            await client.xadd(topic, entry(n))
            await wait_until(f"entry {n} handled", lambda n=n: logged(log, f"handle {n}"))

    after_each_read = [log.items[i + 1] for i, item in enumerate(log.items) if item == "got 1"]
    assert after_each_read == ["handle 0", "handle 1", "handle 2"], log.items

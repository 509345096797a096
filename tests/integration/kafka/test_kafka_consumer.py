"""The Kafka consumer against a real broker: commits, rebalances, backpressure, metadata."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Annotated, Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_helpers import (
    Numbered,
    committed_offsets,
    emit_numbered,
    eventually,
    fresh,
    take,
)
from pydantic import BaseModel

from brokers import KafkaServer
from dispytch import Event, EventEmitter, EventListener, TopicSegment
from dispytch.backends import Subscription
from dispytch.dead_letter import DEAD_LETTER_EVENT, DeadLetter
from dispytch.routing import TopicPattern
from dispytch.testing import Probe, running
from dispytch_kafka import KafkaConsumer, KafkaEventConfig, KafkaSettings

pytestmark = pytest.mark.kafka

SOME_TIME = 1_700_000_000_000


class Body(BaseModel):
    seq: int


def on_partition(partition: int) -> KafkaEventConfig:
    return KafkaEventConfig(partition=partition)


def consumer(settings: dict[str, Any], group: str, topic: str, **extra: Any) -> KafkaConsumer:
    subscription = Subscription(group, (TopicPattern(topic),))
    return KafkaConsumer.from_settings(KafkaSettings(**{**settings, **extra}), subscription)


async def test_poison_message_is_dead_lettered_while_its_partition_keeps_flowing(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    topic, handled, letters = fresh("poison"), Probe(), Probe()
    listener = EventListener.from_backend("kafka", group=fresh("group"), **kafka_settings)

    @listener.handler(topic=topic, event="numbered", retries=1, retry_interval=0.01)
    async def handle(event: Event[Body]) -> None:
        if event.body.seq == 3:
            raise ValueError("poison")
        handled.add(event.body.seq)

    dlq = EventListener.from_backend("kafka", group=fresh("group"), **kafka_settings)

    @dlq.handler(topic=f"{topic}.dlq", event=DEAD_LETTER_EVENT)
    async def collect(event: Event[DeadLetter]) -> None:
        letters.add(event.body)

    async with (
        running(dlq),
        running(listener),
        EventEmitter.from_backend("kafka", **kafka_settings) as emitter,
    ):
        for seq in range(10):
            await emitter.emit(Numbered(route=topic, seq=seq, __backend_config__=on_partition(0)))
        await handled.wait_for(9)
        [letter] = await letters.wait_for(1)

    assert handled.items == [0, 1, 2, 4, 5, 6, 7, 8, 9], "the partition went on, in order"
    assert letter.reason == "handler_failed"
    assert letter.error_message == "poison"
    assert letter.attempts == 2
    assert b'"seq": 3' in letter.original_payload()
    committed = await committed_offsets(kafka_server.bootstrap, listener.group or "", topic)
    assert committed[0] == 10, "the dead-lettered message was acked and committed past"


async def test_graceful_stop_under_load_commits_exactly_what_finished(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    topic, group = fresh("stop"), fresh("group")
    await emit_numbered(kafka_server.bootstrap, topic, range(3000))
    finished: dict[int, list[int]] = defaultdict(list)
    listener = EventListener.from_backend("kafka", group=group, **kafka_settings)

    @listener.handler(topic=topic, event="numbered")
    async def handle(event: Event[Body]) -> None:
        await asyncio.sleep(0.001)
        finished[event.metadata["partition"]].append(event.metadata["offset"])

    task = asyncio.create_task(listener.listen())
    await eventually(lambda: sum(map(len, finished.values())) >= 500, "500 events were handled")
    await listener.stop(timeout=20)
    await task

    committed = await committed_offsets(kafka_server.bootstrap, group, topic)
    assert sum(committed.values()) < 3000, "stopped under load, before the end"
    for partition, offset in committed.items():
        assert finished[partition] == list(range(offset)), f"partition {partition}"


async def test_lost_partitions_get_no_commits_from_their_old_owner(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    topic, group = fresh("rebalance"), fresh("group")
    await emit_numbered(kafka_server.bootstrap, topic, range(40), lambda seq: on_partition(seq % 4))
    old = consumer(kafka_settings, group, topic)
    await old.start()
    held = await take(old.listen(), 40)
    for message in held:
        if message.metadata["offset"] < 5:
            old.ack(message)
    await old.commit()
    assert old.client is not None
    owned_before = set(old.client.assignment())

    new = consumer(kafka_settings, group, topic)
    await new.start()  # returns once the group rebalanced
    lost = owned_before - set(old.client.assignment())
    for message in held:  # the old owner finishes what it held
        old.ack(message)
    await old.commit()

    assert lost, "the new member took partitions from the old one"
    committed = await committed_offsets(kafka_server.bootstrap, group, topic)
    assert committed == dict.fromkeys(range(4), 5), "only what was done before the rebalance"
    assert new.client is not None
    taken = await take(new.listen(), 5 * len(new.client.assignment()))
    for tp in new.client.assignment():
        offsets = [m.metadata["offset"] for m in taken if m.metadata["partition"] == tp.partition]
        assert offsets == [5, 6, 7, 8, 9], "the new owner resumes at the committed offset"
    await asyncio.gather(old.stop(), new.stop())


async def test_a_full_partition_is_paused_and_resumed_where_it_stopped(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    topic, group = fresh("backpressure"), fresh("group")
    await emit_numbered(kafka_server.bootstrap, topic, range(30), lambda seq: on_partition(0))
    bounded = consumer(kafka_settings, group, topic, max_in_flight_per_partition=10)
    await bounded.start()
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def pull() -> None:
        async for message in bounded.listen():
            received.put_nowait(message)

    puller = asyncio.create_task(pull())
    assert bounded.client is not None
    tp = TopicPartition(topic, 0)
    await eventually(lambda: tp in bounded.client.paused(), "the full partition was paused")
    first = [received.get_nowait() for _ in range(received.qsize())]
    assert [m.metadata["offset"] for m in first] == list(range(10)), "no more than 10 in flight"

    for message in first[:5]:
        bounded.ack(message)
    assert tp not in bounded.client.paused(), "resumed at half the limit"
    await eventually(lambda: received.qsize() >= 5, "more messages after the resume")
    more = [received.get_nowait() for _ in range(received.qsize())]
    assert [m.metadata["offset"] for m in more] == list(range(10, 15))
    puller.cancel()
    await bounded.stop()


async def test_a_nacked_message_comes_back_and_holds_the_commit(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    topic, group = fresh("nack"), fresh("group")
    await emit_numbered(kafka_server.bootstrap, topic, range(3), lambda seq: on_partition(0))
    nacking = consumer(kafka_settings, group, topic)
    await nacking.start()
    messages = nacking.listen()
    failed, *later = await take(messages, 3)
    await nacking.nack(failed, delay=0.05)
    for message in later:
        nacking.ack(message)
    await nacking.commit()
    assert await committed_offsets(kafka_server.bootstrap, group, topic) == dict.fromkeys(
        range(4), 0
    ), "never committed past the failed message"

    [again] = await take(messages, 1)
    assert (again.metadata["offset"], again.attempt) == (0, 2)
    nacking.ack(again)
    await nacking.commit()
    committed = await committed_offsets(kafka_server.bootstrap, group, topic)
    assert committed[0] == 3
    await nacking.stop()


async def test_partitions_are_handled_concurrently(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    topic = fresh("concurrent")
    other_partition_done = asyncio.Event()
    handled = Probe()
    listener = EventListener.from_backend("kafka", group=fresh("group"), **kafka_settings)

    @listener.handler(topic=topic, event="numbered")
    async def handle(event: Event[Body]) -> None:
        if event.metadata["partition"] == 0:
            # Finishes only once a message of another partition was handled meanwhile.
            await asyncio.wait_for(other_partition_done.wait(), 20)
        else:
            other_partition_done.set()
        handled.add(event.metadata["partition"])

    async with running(listener):
        await emit_numbered(kafka_server.bootstrap, topic, [0], lambda seq: on_partition(0))
        await emit_numbered(kafka_server.bootstrap, topic, [1], lambda seq: on_partition(1))
        assert await handled.wait_for(2) == [1, 0]


async def test_handlers_see_kafka_metadata(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    class Signup(Numbered):
        user: str
        __backend_config__ = KafkaEventConfig(
            partition_key="user-{user}",
            headers={"origin": "signup"},
            timestamp_ms=1_700_000_000_000,
        )

    topic, probe = fresh("metadata"), Probe()
    listener = EventListener.from_backend("kafka", group=fresh("group"), **kafka_settings)

    @listener.handler(topic=topic, event="numbered")
    async def handle(event: Event[Body]) -> None:
        probe.add(event)

    async with running(listener), EventEmitter.from_url(kafka_server.url) as emitter:
        await emitter.emit(Signup(route=topic, seq=1, user="alice"))
        [event] = await probe.wait_for(1)

    meta = event.metadata
    assert meta["topic"] == topic
    assert meta["partition"] in range(4)
    assert meta["offset"] == 0
    assert meta["key"] == b"user-alice"
    assert meta["timestamp"] == SOME_TIME
    assert ("origin", b"signup") in meta["headers"]
    assert event.headers["origin"] == "signup"
    assert event.key == f"{topic}:{meta['partition']}"


async def test_wildcard_handlers_subscribe_by_regex(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    prefix, probe = fresh("wild"), Probe()
    await emit_numbered(kafka_server.bootstrap, f"{prefix}.eu.extra", [0])  # one segment too many
    listener = EventListener.from_backend("kafka", group=fresh("group"), **kafka_settings)

    @listener.handler(topic=prefix + ".{region}", event="numbered")
    async def handle(event: Event[Body], region: Annotated[str, TopicSegment()]) -> None:
        probe.add((region, event.body.seq))

    async with running(listener):
        # The topics appear after the listener subscribed; metadata refreshes find them.
        await emit_numbered(kafka_server.bootstrap, f"{prefix}.eu", [1])
        await emit_numbered(kafka_server.bootstrap, f"{prefix}.us", [2])
        assert sorted(await probe.wait_for(2)) == [("eu", 1), ("us", 2)]
        assert isinstance(listener.consumer, KafkaConsumer)
        assert listener.consumer.client is not None
        assert listener.consumer.client.subscription() == {f"{prefix}.eu", f"{prefix}.us"}


async def test_revoked_partitions_are_committed_before_they_go(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    prefix, group, probe = fresh("revoke"), fresh("group"), Probe()
    no_periodic_commits = {**kafka_settings, "commit_interval": 600}
    listener = EventListener.from_backend("kafka", group=group, **no_periodic_commits)

    @listener.handler(topic=prefix + ".*", event="numbered")
    async def handle(event: Event[Body]) -> None:
        probe.add(event.topic)

    async with running(listener):
        await emit_numbered(kafka_server.bootstrap, f"{prefix}.eu", [1])
        await probe.wait_for(1)
        # A new matching topic changes the subscription: the group rebalances, and the
        # partitions held so far are revoked, then assigned again.
        await emit_numbered(kafka_server.bootstrap, f"{prefix}.us", [2])
        await probe.wait_for(2)
        committed = await committed_offsets(kafka_server.bootstrap, group, f"{prefix}.eu")
    assert sum(committed.values()) == 1, "committed on revoke, long before the next interval"


async def test_wrapping_an_aiokafka_consumer_as_in_0_10(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    topic, group, probe = fresh("wrapped"), fresh("group"), Probe()
    await emit_numbered(kafka_server.bootstrap, topic, range(5))
    client = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_server.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )
    listener = EventListener(KafkaConsumer(client))

    @listener.handler(topic=topic, event="numbered")
    async def handle(event: Event[Body]) -> None:
        probe.add(event.body.seq)

    async with running(listener):
        assert sorted(await probe.wait_for(5)) == list(range(5))
    assert sum((await committed_offsets(kafka_server.bootstrap, group, topic)).values()) == 5


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"group_id": "g"}, "enable_auto_commit=False"), ({"enable_auto_commit": False}, "group_id")],
)
async def test_wrapped_consumers_must_leave_commits_to_dispytch(
    options: dict[str, Any], problem: str
) -> None:
    client = AIOKafkaConsumer("orders", bootstrap_servers="127.0.0.1:9", **options)
    with pytest.raises(ValueError, match=problem):
        KafkaConsumer(client)
    await client.stop()


async def test_offsets_are_committed_once_the_stream_goes_idle(
    kafka_server: KafkaServer, kafka_settings: dict[str, Any]
) -> None:
    topic, group, probe = fresh("idle"), fresh("group"), Probe()
    await emit_numbered(kafka_server.bootstrap, topic, range(3))
    no_periodic_commits = {**kafka_settings, "commit_interval": 600}
    listener = EventListener.from_backend("kafka", group=group, **no_periodic_commits)

    @listener.handler(topic=topic, event="numbered")
    async def handle(event: Event[Body]) -> None:
        probe.add(event.body.seq)

    async with running(listener):
        await probe.wait_for(3)
        committed: dict[int, int] = {}
        for _ in range(300):  # every message is acked: the commit goes out without the timer
            committed = await committed_offsets(kafka_server.bootstrap, group, topic)
            if sum(committed.values()) == 3:
                break
            await asyncio.sleep(0.1)
        assert sum(committed.values()) == 3, "all three offsets committed while still running"

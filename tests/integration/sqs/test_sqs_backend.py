"""What the SQS backend does beyond the conformance suite, against moto's SQS and SNS:
settings and secrets, names, the payload limit, visibility kept while a handler runs,
FIFO order across a nack, and dead-letter queues (SQS's redrive and native dead letters)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session
from pydantic import BaseModel, ValidationError

from brokers import SQSServer
from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends import Subscription, registry, select_backend
from dispytch.routing import TopicPattern
from dispytch.testing import Probe, running
from dispytch_sqs import SQSEventConfig, SQSPublishError, SQSSettings
from dispytch_sqs.consumer import REASON, SQSConsumer
from dispytch_sqs.naming import dead_letter_queue_name, queue_name, topic_name

pytestmark = pytest.mark.sqs


class Note(EventBase):
    __topic__ = "{route}"
    __event_type__ = "sqs_test.note"

    route: str
    n: int
    text: str = ""


class NoteBody(BaseModel):
    n: int
    text: str = ""


def fresh(kind: str) -> str:
    return f"sqs-test.{kind}.{uuid.uuid4().hex[:10]}"


# -- settings, names, capabilities ---------------------------------------------------------


def test_url_forms() -> None:
    assert SQSSettings.from_url("sqs://").region is None
    assert SQSSettings.from_url("sqs://eu-west-1").region == "eu-west-1"
    local = SQSSettings.from_url("sqs://127.0.0.1:4566?region=us-east-1&fifo=true")
    assert (local.endpoint_url, local.region, local.fifo) == (
        "http://127.0.0.1:4566",
        "us-east-1",
        True,
    )
    keyed = SQSSettings.from_url("sqs://AKID:se%2Fcret@eu-west-1?max_receive_count=5")
    assert keyed.access_key_id is not None
    assert keyed.secret_access_key is not None
    assert keyed.access_key_id.get_secret_value() == "AKID"
    assert keyed.secret_access_key.get_secret_value() == "se/cret"
    assert keyed.max_receive_count == 5


def test_credentials_never_shown() -> None:
    settings = SQSSettings(access_key_id="AKIDEXAMPLE", secret_access_key="wJalrXUtnFEMI")
    shown = f"{settings!r} {settings} {settings.model_dump()}"
    assert "AKIDEXAMPLE" not in shown
    assert "wJalrXUtnFEMI" not in shown


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValidationError, match="wait_time"):
        SQSSettings(wait_time=21)
    with pytest.raises(ValidationError, match="secret_access_key"):
        SQSSettings(access_key_id="AKID")
    with pytest.raises(ValueError, match="sqs://"):
        SQSSettings.from_url("amqp://localhost")


def test_capabilities_follow_settings() -> None:
    backend, settings = select_backend("sqs", {})
    plain = backend.capabilities_for(settings)
    assert plain.offered() == ["persistent", "consumer_groups", "redelivery", "headers"]
    assert plain.max_payload_bytes == 262_144 - 1024
    backend, settings = select_backend("sqs", {"fifo": True, "max_receive_count": 3})
    assert {"ordering", "native_dead_letter"} <= set(backend.capabilities_for(settings).offered())


def test_names_are_distinct_and_fit() -> None:
    assert topic_name("users.42") == "users_2E42"
    assert topic_name("a.b") != topic_name("a_b") != topic_name("a-b")
    assert topic_name("orders", "app-", fifo=True) == "app-orders.fifo"
    long = queue_name("g" * 200, fifo=True)
    assert len(dead_letter_queue_name(long)) <= 80
    assert dead_letter_queue_name(long).endswith("-dlq.fifo")
    assert queue_name("g" * 200) != queue_name("g" * 199 + "h")


def test_listed_by_the_cli_and_never_imported_by_core() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "dispytch", "backends"], capture_output=True, text=True, check=True
    ).stdout
    [line] = [line for line in listing.splitlines() if line.startswith("sqs ")]
    assert "dispytch-sqs" in line
    assert registry().get("sqs").distribution == "dispytch-sqs"
    core = Path(__file__).parents[3] / "dispytch-core" / "src"
    mentions = [p for p in core.rglob("*.py") if "dispytch_sqs" in p.read_text()]
    assert mentions == []


def test_wildcard_topics_are_refused() -> None:
    subscription = Subscription("g", (TopicPattern("users.{user_id}"),))
    with pytest.raises(ValueError, match="literal topics"):
        SQSConsumer(SQSSettings(), subscription)


# -- against the server --------------------------------------------------------------------


async def test_event_over_the_limit_says_what_to_do(sqs_settings: dict[str, Any]) -> None:
    async with EventEmitter.from_backend("sqs", **sqs_settings) as emitter:
        with pytest.raises(SQSPublishError, match=r"at most 261120 and 262144 bytes"):
            await emitter.emit(Note(route=fresh("topic"), n=1, text="x" * 300_000))


async def test_binary_payloads_travel_in_base64(sqs_settings: dict[str, Any]) -> None:
    topic, probe = fresh("topic"), Probe()
    subscription = Subscription(fresh("group"), (TopicPattern(topic),))
    consumer = SQSConsumer(SQSSettings(**sqs_settings), subscription)
    await consumer.start()
    try:
        raw = EventEmitter.from_backend("sqs", **sqs_settings)
        async with raw:
            await raw.producer.send(topic, b"\x00\xff binary \x01")
        async for message in consumer.listen():
            probe.add(message)
            consumer.ack(message)
            break
    finally:
        await consumer.stop()
    [message] = probe.items
    assert (message.topic, message.payload, message.attempt) == (topic, b"\x00\xff binary \x01", 1)


async def test_a_receiver_polls_again_once_listen_took_what_it_received(
    sqs_settings: dict[str, Any],
) -> None:
    """Handling starts before the next poll's request takes the event loop: every
    ReceiveMessage is sent when `listen()` has handed out all the messages received before."""
    topic, counts = fresh("topic"), {"received": 0, "taken": 0}
    not_taken: list[int] = []  # at each ReceiveMessage sent: received and not handed out

    def sending(**_: Any) -> None:
        not_taken.append(counts["received"] - counts["taken"])

    def answered(parsed: dict[str, Any], **_: Any) -> None:
        counts["received"] += len(parsed.get("Messages", ()))

    class Watched(SQSSettings):
        def session(self) -> AioSession:
            session = super().session()
            session.register("before-call.sqs.ReceiveMessage", sending)
            session.register("after-call.sqs.ReceiveMessage", answered)
            return session

    consumer = SQSConsumer(
        Watched(**sqs_settings, receivers=1), Subscription(fresh("group"), (TopicPattern(topic),))
    )
    await consumer.start()
    try:
        async with EventEmitter.from_backend("sqs", **sqs_settings) as emitter:
            await emitter.emit_many(Note(route=topic, n=n) for n in range(25))
        async for message in consumer.listen():
            counts["taken"] += 1
            consumer.ack(message)
            if counts["taken"] == 25:
                break
    finally:
        await consumer.stop()
    assert len(not_taken) >= 3, "25 messages take three polls of ten at least"
    assert not_taken == [0] * len(not_taken)


async def test_a_long_handler_keeps_its_message(sqs_settings: dict[str, Any]) -> None:
    """Visibility is extended while the handler runs past the visibility timeout, so the
    group's other listener never gets the message."""
    topic, group, calls = fresh("topic"), fresh("group"), Probe()
    settings = {**sqs_settings, "visibility_timeout": 2}
    slow = EventListener.from_backend("sqs", group=group, **settings)
    other = EventListener.from_backend("sqs", group=group, **settings)

    @slow.handler(topic=topic, event=Note.__event_type__)
    async def takes_long(event: Event[NoteBody]) -> None:
        calls.add(("slow", event.attempt))
        await asyncio.sleep(5)

    @other.handler(topic=topic, event=Note.__event_type__)
    async def records(event: Event[NoteBody]) -> None:
        calls.add(("other", event.attempt))

    async with running(slow), EventEmitter.from_backend("sqs", **settings) as emitter:
        await emitter.emit(Note(route=topic, n=1))
        await calls.wait_for(1)
        async with running(other):
            await asyncio.sleep(6)
    assert calls.items == [("slow", 1)]


async def test_fifo_order_survives_a_nack(sqs_settings: dict[str, Any]) -> None:
    topic, handled, failed = fresh("topic"), Probe(), Probe()
    settings = {**sqs_settings, "fifo": True}
    listener = EventListener.from_backend(
        "sqs",
        group=fresh("group"),
        listener_options={"dead_letter_topic": None, "redelivery_delay": 0.0},
        **settings,
    )

    @listener.handler(topic=topic, event=Note.__event_type__)
    async def fails_on_three_once(event: Event[NoteBody]) -> None:
        if event.body.n == 3 and not failed.items:
            failed.add(event.attempt)
            raise RuntimeError("the first delivery of 3 fails")
        handled.add((event.body.n, event.attempt))

    key = SQSEventConfig(key="one-key")
    async with running(listener), EventEmitter.from_backend("sqs", **settings) as emitter:
        for n in range(8):
            await emitter.emit(Note(route=topic, n=n).with_backend_config(key))
        await handled.wait_for(8)
    assert [n for n, _ in handled.items] == list(range(8))
    assert dict(handled.items)[3] == 2, "3 was delivered again, with its receive count"


async def test_sqs_redrives_a_message_received_too_often(
    sqs_server: SQSServer, sqs_settings: dict[str, Any]
) -> None:
    topic = fresh("topic")
    settings = SQSSettings(**{**sqs_settings, "max_receive_count": 2, "receivers": 1})
    consumer = SQSConsumer(settings, Subscription(fresh("group"), (TopicPattern(topic),)))
    await consumer.start()
    try:
        async with EventEmitter.from_backend("sqs", **settings.model_dump()) as emitter:
            await emitter.emit(Note(route=topic, n=1))
        attempts = []
        async for message in consumer.listen():
            attempts.append(message.attempt)
            await consumer.nack(message, delay=0)
            if len(attempts) == 2:
                break
        # SQS moves the message when a receive finds it over the limit. The consumer's one
        # receiver does not poll again until the listener takes what it received, so receive here.
        assert consumer.queue is not None
        async with _client(sqs_server) as sqs:
            reply = await sqs.receive_message(QueueUrl=consumer.queue.url, WaitTimeSeconds=0)
        letters = await _receive_all(sqs_server, consumer, expect=1)
    finally:
        await consumer.stop()
    assert "Messages" not in reply
    assert attempts == [1, 2]
    assert json.loads(letters[0]["Body"])["body"]["n"] == 1


async def test_native_dead_letter_moves_the_message_with_its_reason(
    sqs_server: SQSServer, sqs_settings: dict[str, Any]
) -> None:
    topic, calls = fresh("topic"), Probe()
    settings = {**sqs_settings, "max_receive_count": 5}
    listener = EventListener.from_backend(
        "sqs", group=fresh("group"), listener_options={"native_dead_letter": True}, **settings
    )

    @listener.handler(topic=topic, event=Note.__event_type__, retries=1, retry_interval=0.01)
    async def always_fails(event: Event[NoteBody]) -> None:
        calls.add(event.body.n)
        raise ValueError(f"cannot handle {event.body.n}")

    async with running(listener), EventEmitter.from_backend("sqs", **settings) as emitter:
        await emitter.emit(Note(route=topic, n=9))
        await calls.wait_for(2)
        consumer = listener.consumer
        assert isinstance(consumer, SQSConsumer)
        [letter] = await _receive_all(sqs_server, consumer, expect=1)
    reason = letter["MessageAttributes"][REASON]["StringValue"]
    assert reason == "handler_failed: ValueError: cannot handle 9"
    assert letter["MessageAttributes"]["dispytch.topic"]["StringValue"] == topic
    assert calls.items == [9, 9]


def _client(server: SQSServer) -> Any:
    """A client of `server`'s SQS, apart from the backend's."""
    return get_session().create_client(
        "sqs",
        region_name=server.region,
        endpoint_url=server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


async def _receive_all(
    server: SQSServer, consumer: SQSConsumer, expect: int
) -> list[dict[str, Any]]:
    """The messages of `consumer`'s dead-letter queue, once `expect` are there."""
    assert consumer.queue is not None
    assert consumer.queue.dead_letter_url is not None
    found: list[dict[str, Any]] = []
    async with _client(server) as sqs:
        for _ in range(20):
            reply = await sqs.receive_message(
                QueueUrl=consumer.queue.dead_letter_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
            )
            found += reply.get("Messages", [])
            if len(found) >= expect:
                return found
    pytest.fail(f"expected {expect} message(s) in the dead-letter queue, found {len(found)}")

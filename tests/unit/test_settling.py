"""Every message settles once, whatever it holds: max_deliveries by default, max_message_bytes,
decode errors of every kind mapped, dead letters that go out reduced when they cannot go out
whole, and a last resort for failures nothing else foresaw."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import BaseModel
from seed_fakes import NackingConsumer, SyncAckConsumer, Wire, WireProducer
from support import WAIT, dead_letters, eventually, fresh

from dispytch import DeadLetter, Event, EventBase, EventEmitter, EventListener, Message
from dispytch.dead_letter import DEAD_LETTER_EVENT, KEPT_PAYLOAD_BYTES
from dispytch.serialization import DecodeError, Envelope, JSONSerializer
from dispytch.serialization.msgpack import MessagePackSerializer
from dispytch.testing import Probe, running


class Noted(EventBase):
    __topic__ = "notes"
    __event_type__ = "noted"

    text: str


class Note(BaseModel):
    text: str


def envelope_bytes(body: Any, event_type: str = "noted") -> bytes:
    return JSONSerializer().dumps(Envelope("id-1", event_type, body, 1))


# -- max_deliveries --------------------------------------------------------------------------


async def test_by_default_the_eleventh_delivery_is_dead_lettered(memory_url: str) -> None:
    topic = fresh("notes")
    listener = EventListener.from_url(
        memory_url, group="g", listener_options={"redelivery_delay": 0.0}
    )
    dlq = EventListener.from_url(memory_url, group="operators")
    attempts, letters = Probe(), Probe()

    @listener.handler(topic=topic, event="noted", dead_letter_topic=None)
    async def always_fails(event: Event[Note]) -> None:
        attempts.add(event.attempt)
        raise RuntimeError("a bug nobody foresaw")

    @dlq.handler(topic=f"{topic}.dlq", event=DEAD_LETTER_EVENT)
    async def collect(event: Event[DeadLetter]) -> None:
        letters.add(event.body)

    class Routed(Noted):
        __topic__ = topic

    async with running(dlq), running(listener), EventEmitter.from_url(memory_url) as emitter:
        await emitter.emit(Routed(text="x"))
        [letter] = await letters.wait_for(1, WAIT)

    assert listener.max_deliveries == 10
    assert attempts.items == list(range(1, 11))
    assert (letter.reason, letter.attempts) == ("too_many_deliveries", 11)


async def test_max_deliveries_none_opts_out(wire: Wire) -> None:
    class Redelivered(NackingConsumer):
        async def listen(self) -> Any:
            async for msg in super().listen():
                msg.attempt = 1000
                yield msg

    consumer, handled = Redelivered(wire), Probe()
    listener = EventListener(consumer, max_deliveries=None)

    @listener.handler(topic="notes", event="noted")
    async def handle(event: Event[Note]) -> None:
        handled.add(event.attempt)

    async with running(listener):
        wire.put("notes", envelope_bytes({"text": "x"}))
        assert await handled.wait_for(1, WAIT) == [1000]


@pytest.mark.parametrize("option", ["max_deliveries", "max_message_bytes"])
def test_limits_must_be_positive(option: str) -> None:
    with pytest.raises(ValueError, match=f"{option} must be at least 1 or None, got 0"):
        EventListener(**{option: 0})


# -- max_message_bytes -----------------------------------------------------------------------


async def test_a_payload_over_max_message_bytes_is_dead_lettered_before_decoding(
    wire: Wire, dlq_wire: Wire
) -> None:
    consumer, handled = SyncAckConsumer(wire), Probe()
    listener = EventListener(consumer, producer=WireProducer(dlq_wire), max_message_bytes=100_000)

    @listener.handler(topic="notes", event="noted")
    async def handle(event: Event[Note]) -> None:
        handled.add(event.body.text)

    oversized = envelope_bytes({"text": "y" * 200_000})
    async with running(listener):
        wire.put("notes", oversized)
        wire.put("notes", envelope_bytes({"text": "fits"}))
        await handled.wait_for(1, WAIT)
        await eventually(lambda: len(consumer.acked) == 2)

    [(topic, letter)] = dead_letters(dlq_wire)
    assert (topic, letter.reason, letter.payload_size) == ("notes.dlq", "too_large", len(oversized))
    assert letter.error_message == (
        f"payload of {len(oversized)} bytes is larger than max_message_bytes=100000"
    )
    assert letter.original_payload() == oversized[:KEPT_PAYLOAD_BYTES]
    assert (
        letter.omitted == f"payload cut to its first {KEPT_PAYLOAD_BYTES} of {len(oversized)} bytes"
    )
    assert handled.items == ["fits"]


# -- decode errors of every kind -------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000-levels"),
        pytest.param(b"9" * 5_000, id="integer-of-5000-digits"),
        pytest.param(
            b'{"id": "\\ud800", "type": "t", "body": ' + b"9" * 5_000 + b', "timestamp": 1}',
            id="integer-past-the-digit-limit-in-a-document-only-json-parses",
        ),
        pytest.param(b"\xff\xfe\x00", id="invalid-utf-8"),
    ],
)
def test_the_json_serializer_raises_decode_error_for_any_bad_payload(payload: bytes) -> None:
    with pytest.raises(DecodeError, match=r"payload is not JSON|expected an envelope object"):
        JSONSerializer().loads(payload)


async def test_a_body_nested_too_deep_to_validate_is_dead_lettered_as_invalid(
    wire: Wire, dlq_wire: Wire
) -> None:
    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire))

    @listener.handler(topic="notes", event="noted")
    async def handle(event: Event[Note]) -> None: ...

    nested: Any = {}
    for _ in range(900):
        nested = {"text": nested}
    async with running(listener):
        wire.put("notes", JSONSerializer().dumps(Envelope("id-1", "noted", nested, 1)))
        await eventually(lambda: len(consumer.acked) == 1)

    [(_, letter)] = dead_letters(dlq_wire)
    assert letter.reason == "invalid"


async def test_an_exception_a_third_party_serializer_did_not_map_is_undecodable(
    wire: Wire, dlq_wire: Wire
) -> None:
    class Careless(JSONSerializer):
        def loads(self, payload: bytes) -> Envelope:
            if payload == b"boom":
                raise KeyError("an unmapped error")
            return super().loads(payload)

    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire), serializer=Careless())

    @listener.handler(topic="notes", event="noted")
    async def handle(event: Event[Note]) -> None: ...

    async with running(listener):
        wire.put("notes", b"boom")
        await eventually(lambda: len(consumer.acked) == 1)

    [(_, letter)] = dead_letters(dlq_wire)
    assert (letter.reason, letter.error_type) == ("undecodable", "builtins.KeyError")


async def test_a_failure_nothing_foresaw_still_settles_the_message(
    wire: Wire, dlq_wire: Wire
) -> None:
    class Unhashable(str):
        def __hash__(self) -> int:
            raise TypeError("this event type cannot be hashed")

    class Buggy(JSONSerializer):
        """Hands out an envelope whose type cannot even be looked up."""

        def loads(self, payload: bytes) -> Envelope:
            envelope = super().loads(payload)
            if envelope.body == {"text": "bug"}:
                envelope.type = Unhashable(envelope.type)
            return envelope

    consumer, handled = SyncAckConsumer(wire), Probe()
    listener = EventListener(consumer, producer=WireProducer(dlq_wire), serializer=Buggy())

    @listener.handler(topic="notes", event="noted")
    async def handle(event: Event[Note]) -> None:
        handled.add(event.body.text)

    async with running(listener):
        wire.put("notes", envelope_bytes({"text": "bug"}))
        wire.put("notes", envelope_bytes({"text": "fine"}))
        await handled.wait_for(1, WAIT)
        await eventually(lambda: len(consumer.acked) == 2)

    [(_, letter)] = dead_letters(dlq_wire)
    assert (letter.reason, letter.error_type) == ("internal_error", "builtins.TypeError")


# -- dead letters that cannot go out whole ---------------------------------------------------


class SizeLimitedProducer(WireProducer):
    """A dead-letter producer whose broker refuses messages over `limit` bytes."""

    def __init__(self, wire: Wire, limit: int) -> None:
        super().__init__(wire)
        self.limit = limit

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        if len(payload) > self.limit:
            raise ValueError(f"message of {len(payload)} bytes exceeds the broker's limit")
        await super().send(topic, payload, config)


async def test_a_dead_letter_too_large_for_the_broker_goes_out_reduced(
    wire: Wire, dlq_wire: Wire
) -> None:
    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer, producer=SizeLimitedProducer(dlq_wire, limit=200_000))

    @listener.handler(topic="notes", event="noted")
    async def fails(event: Event[Note]) -> None:
        raise RuntimeError("cannot take notes today")

    payload = envelope_bytes({"text": "z" * 300_000})
    async with running(listener):
        wire.put("notes", payload)
        await eventually(lambda: len(consumer.acked) == 1)

    [(_, letter)] = dead_letters(dlq_wire)
    assert (letter.reason, letter.payload_size) == ("handler_failed", len(payload))
    assert letter.payload_encoding == "base64"
    assert letter.original_payload() == payload[:KEPT_PAYLOAD_BYTES]
    assert letter.error_message == "cannot take notes today"
    assert letter.traceback is None
    assert letter.omitted is not None
    assert letter.omitted.startswith(
        f"payload cut to its first {KEPT_PAYLOAD_BYTES} of {len(payload)} bytes; "
        "traceback and long texts dropped: the full dead letter could not be sent: "
        "ValueError: message of "
    )


async def test_a_dead_letter_the_serializer_cannot_encode_goes_out_reduced(
    wire: Wire, dlq_wire: Wire
) -> None:
    serializer = MessagePackSerializer()
    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire), serializer=serializer)

    @listener.handler(topic="notes", event="noted")
    async def fails(event: Event[Note]) -> None:
        raise RuntimeError("lone surrogate \ud800 in the message")

    payload = serializer.dumps(Envelope("id-1", "noted", {"text": "x"}, 1))
    async with running(listener):
        wire.put("notes", payload)
        await eventually(lambda: len(consumer.acked) == 1)

    [(_, letter)] = dead_letters(dlq_wire, serializer)
    assert letter.error_message == "lone surrogate \\ud800 in the message"
    assert base64.b64decode(letter.payload) == payload == letter.original_payload()
    assert letter.omitted is not None
    assert "UnicodeEncodeError" in letter.omitted


def test_a_dead_letter_keeps_what_it_can_of_an_unreadable_error_and_odd_headers() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    message = Message(
        topic="notes",
        payload=b"\x80",
        key=b"k-\xff",  # type: ignore[arg-type]
        headers={"n": 7},  # type: ignore[dict-item]
    )
    letter = DeadLetter.of(message, Unprintable(), reason="handler_failed")

    assert letter.error_message == "<the message of this Unprintable could not be read>"
    assert (letter.key, letter.headers) == ("k-\\xff", {"n": "7"})
    assert (letter.payload_encoding, letter.original_payload()) == ("base64", b"\x80")
    assert (letter.payload_size, letter.omitted) == (1, None)

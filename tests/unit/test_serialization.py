"""Point 3: the 0.10 wire format, JSON by default, msgpack as an extra, bad input dead-lettered."""

import json
import zlib

import msgpack
import pytest
from pydantic import BaseModel
from seed_fakes import SyncAckConsumer, Wire, WireProducer
from support import WAIT, dead_letters, eventually

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.serialization import DecodeError, Envelope, JSONSerializer
from dispytch.serialization.msgpack import MessagePackSerializer
from dispytch.testing import Probe, running


class Shipped(EventBase):
    __topic__ = "parcels"
    __event_type__ = "shipped"

    parcel: str
    weight_g: int


class Parcel(BaseModel):
    parcel: str
    weight_g: int


async def test_json_payload_is_the_0_10_envelope_byte_for_byte(wire: Wire) -> None:
    await EventEmitter(WireProducer(wire)).emit(Shipped(parcel="p-1", weight_g=250))

    payload = wire.sent[0].payload
    envelope = json.loads(payload)
    assert list(envelope) == ["id", "type", "body", "timestamp"]
    assert envelope["type"] == "shipped"
    assert envelope["body"] == {"parcel": "p-1", "weight_g": 250}
    assert isinstance(envelope["id"], str)
    assert isinstance(envelope["timestamp"], int)
    assert envelope["timestamp"] > 1_600_000_000_000, "milliseconds, not seconds"
    assert payload == json.dumps(envelope).encode(), "what 0.10's json.dumps(...).encode() wrote"


async def test_a_payload_written_by_0_10_is_handled(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="parcels", event="shipped")
    async def record(event: Event[Parcel]) -> None:
        probe.add(event)

    legacy = (
        b'{"id": "6f1c2a", "type": "shipped", '
        b'"body": {"parcel": "p-9", "weight_g": 10}, "timestamp": 1717171717171}'
    )
    async with running(listener):
        wire.put("parcels", legacy)
        [event] = await probe.wait_for(1, WAIT)

    assert (event.id, event.timestamp) == ("6f1c2a", 1717171717171)
    assert event.body == Parcel(parcel="p-9", weight_g=10)


async def test_msgpack_serializer_round_trips(wire: Wire) -> None:
    serializer = MessagePackSerializer()
    listener, probe = EventListener(SyncAckConsumer(wire), serializer=serializer), Probe()

    @listener.handler(topic="parcels", event="shipped")
    async def record(event: Event[Parcel]) -> None:
        probe.add(event.body)

    emitter = EventEmitter(WireProducer(wire), serializer=serializer)
    async with running(listener), emitter:
        await emitter.emit(Shipped(parcel="p-2", weight_g=5))
        assert await probe.wait_for(1, WAIT) == [Parcel(parcel="p-2", weight_g=5)]

    envelope = msgpack.unpackb(wire.sent[0].payload)
    assert sorted(envelope) == ["body", "id", "timestamp", "type"]


class CompressedJSON:
    """A user's own serializer: the JSON envelope, zlib-compressed."""

    def dumps(self, envelope: Envelope) -> bytes:
        return zlib.compress(JSONSerializer().dumps(envelope))

    def loads(self, payload: bytes) -> Envelope:
        try:
            return JSONSerializer().loads(zlib.decompress(payload))
        except zlib.error as exc:
            raise DecodeError(f"not compressed: {exc}") from None


async def test_any_serializer_with_dumps_and_loads_plugs_in(wire: Wire) -> None:
    listener = EventListener(SyncAckConsumer(wire), serializer=CompressedJSON())
    probe = Probe()

    @listener.handler(topic="parcels", event="shipped")
    async def record(event: Event[Parcel]) -> None:
        probe.add(event.body)

    emitter = EventEmitter(WireProducer(wire), serializer=CompressedJSON())
    async with running(listener), emitter:
        await emitter.emit(Shipped(parcel="p-3", weight_g=9))
        assert await probe.wait_for(1, WAIT) == [Parcel(parcel="p-3", weight_g=9)]

    assert json.loads(zlib.decompress(wire.sent[0].payload))["type"] == "shipped"


PARSED_AS_JSON_DOES = {
    "whitespace": b' {"a": 1} ',
    "unicode": b'{"a": "\\ud83d\\ude00 \\u00e9 \xc3\xa9", "b": null, "c": [true, false]}',
    "numbers": b'{"a": -0.0, "b": 1.5e-10, "c": 12345678901234567890123, "d": 1e400, "e": NaN}',
    "lone surrogate": b'{"a": "\\ud800"}',
    "300 levels deep": b"[" * 300 + b"]" * 300,
}


@pytest.mark.parametrize("document", PARSED_AS_JSON_DOES.values(), ids=PARSED_AS_JSON_DOES.keys())
def test_json_payloads_parse_as_the_standard_library_parses_them(document: bytes) -> None:
    payload = b'{"id": "x", "type": "t", "body": ' + document + b', "timestamp": 1}'
    body = JSONSerializer().loads(payload).body
    assert json.dumps(body) == json.dumps(json.loads(document))


UNDECODABLE = {
    "not json": b"\xff\xfe not even utf-8",
    "trailing garbage": b'{"id": "x", "type": "shipped", "body": {}, "timestamp": 1} x',
    "utf-8 byte order mark": b'\xef\xbb\xbf{"id": "x", "type": "s", "body": {}, "timestamp": 1}',
    "not an object": b"[1, 2, 3]",
    "missing fields": b'{"id": "x", "type": "shipped"}',
    "timestamp not an integer": b'{"id": "x", "type": "shipped", "body": {}, "timestamp": "now"}',
    "timestamp a boolean": b'{"id": "x", "type": "shipped", "body": {}, "timestamp": true}',
    "type not a string": b'{"id": "x", "type": 3, "body": {}, "timestamp": 1}',
}


@pytest.mark.parametrize("payload", UNDECODABLE.values(), ids=UNDECODABLE.keys())
async def test_undecodable_payload_is_dead_lettered_and_the_listener_goes_on(
    wire: Wire, dlq_wire: Wire, payload: bytes
) -> None:
    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire))
    probe = Probe()

    @listener.handler(topic="parcels", event="shipped")
    async def record(event: Event[Parcel]) -> None:
        probe.add(event.body)

    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        wire.put("parcels", payload)
        await emitter.emit(Shipped(parcel="after", weight_g=1))
        assert await probe.wait_for(1, WAIT) == [Parcel(parcel="after", weight_g=1)]

    [(topic, letter)] = dead_letters(dlq_wire)
    assert topic == "parcels.dlq"
    assert letter.reason == "undecodable"
    assert letter.error_type == "dispytch.serialization.envelope.DecodeError"
    assert letter.original_payload() == payload
    assert len(consumer.acked) == 2, "the bad message is acked once dead-lettered"


async def test_msgpack_garbage_is_dead_lettered(wire: Wire, dlq_wire: Wire) -> None:
    serializer = MessagePackSerializer()
    consumer, producer = SyncAckConsumer(wire), WireProducer(dlq_wire)
    listener = EventListener(consumer, producer=producer, serializer=serializer)

    @listener.handler(topic="parcels", event="shipped")
    async def record(event: Event[Parcel]) -> None: ...

    async with running(listener):
        wire.put("parcels", b"\xc1")
        await eventually(lambda: len(dlq_wire.sent) == 1)

    [(_, letter)] = dead_letters(dlq_wire, serializer)
    assert (letter.reason, letter.original_payload()) == ("undecodable", b"\xc1")

"""Hostile payloads for property tests: hypothesis strategies of payloads no listener may
choke on, and a scenario that sends a batch of them, interleaved with good events,
through a real backend and reports how every message was settled.

None of the payloads is a valid `hostile.ping` event, so each must be dead-lettered; the
good events must each be handled once.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from dispytch import DeadLetter, Event, EventBase, EventEmitter, EventListener
from dispytch.dead_letter import DEAD_LETTER_EVENT, KEPT_PAYLOAD_BYTES
from dispytch.instrumentation import Delivery, Instrumentation
from dispytch.testing import Probe

PING = "hostile.ping"
MAX_MESSAGE_BYTES = 256 * 1024
"""The scenario's listener dead-letters payloads larger than this as `too_large`."""
BAD_REASONS = {"undecodable", "invalid", "unmatched", "too_large"}


class Ping(EventBase):
    """The good event."""

    __topic__ = "{route}"
    __event_type__ = PING

    route: str
    seq: int


class PingBody(BaseModel):
    route: str
    seq: int


def _envelope(event_type: Any, body: Any, *, id: Any = "hostile", timestamp: Any = 1) -> bytes:
    return json.dumps({"id": id, "type": event_type, "body": body, "timestamp": timestamp}).encode()


def _invalid_body(body: Any) -> bool:
    try:
        PingBody.model_validate(body)
    except ValidationError:
        return True
    return False


_GOOD = _envelope(PING, {"route": "r", "seq": 1})
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_not_a_string = st.none() | st.booleans() | st.integers() | st.floats() | st.lists(st.integers())
_not_an_int = st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.just([1])


def _nested(depth: int, closed: bool) -> bytes:
    return b"[" * depth + (b"]" * depth if closed else b"")


def _huge_int(digits: int) -> bytes:
    return b"9" * digits


def _huge_int_in(where: str, digits: int) -> bytes:
    """An integer of thousands of digits where an envelope cannot take it; `json-only` puts
    it in a document only the standard library's parser reads, past its digit limit."""
    documents = {
        "timestamp": b'{"id": "x", "type": "unknown", "body": {}, "timestamp": N}',
        "body": b'{"id": "x", "type": "hostile.ping", "body": N, "timestamp": 1}',
        "type": b'{"id": "x", "type": N, "body": {}, "timestamp": 1}',
        "json-only": b'{"id": "\\ud800", "type": "unknown", "body": N, "timestamp": 1}',
    }
    return documents[where].replace(b"N", _huge_int(digits))


random_bytes = st.binary(max_size=200)
invalid_utf8 = st.binary(max_size=40).map(lambda b: b'{"id": "\xff\xfe' + b + b'", "type": 1}')
truncated_json = st.integers(0, len(_GOOD) - 1).map(lambda cut: _GOOD[:cut])
deep_nesting = st.builds(_nested, st.integers(1, 200_000), st.booleans())
deep_body = st.integers(150, 5_000).map(
    lambda depth: _envelope(PING, None).replace(b'"body": null', b'"body": ' + _nested(depth, True))
)
huge_int = st.integers(4_000, 20_000).map(_huge_int)
huge_int_fields = st.builds(
    _huge_int_in,
    st.sampled_from(["timestamp", "body", "type", "json-only"]),
    st.integers(4_000, 20_000),
)
huge_string = st.integers(MAX_MESSAGE_BYTES - 1024, 3 * MAX_MESSAGE_BYTES).map(
    lambda size: _envelope(PING, {"route": "r", "seq": "x" * size})
)
huge_unknown_type = st.integers(10_000, 200_000).map(lambda size: _envelope("t" * size, {}))
wrong_typed_fields = st.one_of(
    st.builds(lambda v: _envelope(PING, {"route": "r", "seq": 1}, id=v), _not_a_string),
    st.builds(lambda v: _envelope(v, {"route": "r", "seq": 1}), _not_a_string),
    st.builds(lambda v: _envelope(PING, {"route": "r", "seq": 1}, timestamp=v), _not_an_int),
    st.builds(
        lambda drop: json.dumps({k: v for k, v in json.loads(_GOOD).items() if k != drop}).encode(),
        st.sampled_from(["id", "type", "body", "timestamp"]),
    ),
)
unknown_type = st.builds(
    lambda t: _envelope(t, {"route": "r", "seq": 1}),
    st.text(max_size=30).filter(lambda t: t != PING),
)
lone_surrogate_type = st.just(b'{"id": "x", "type": "\\ud800", "body": {}, "timestamp": 1}')
not_an_object = _json_values.filter(lambda v: not isinstance(v, dict)).map(
    lambda v: json.dumps(v).encode()
)
bad_body = _json_values.filter(_invalid_body).map(lambda body: _envelope(PING, body))

hostile_payloads = st.one_of(
    random_bytes,
    invalid_utf8,
    truncated_json,
    deep_nesting,
    deep_body,
    huge_int,
    huge_int_fields,
    huge_string,
    huge_unknown_type,
    wrong_typed_fields,
    unknown_type,
    lone_surrogate_type,
    not_an_object,
    bad_body,
)
"""Payloads that are not a valid `hostile.ping` event, each in its own way."""

batches = st.lists(st.tuples(hostile_payloads, st.booleans()), min_size=20, max_size=50)
"""Hostile payloads, each followed by a good event or not."""


class Settlements(Instrumentation):
    """Records how each message was settled, by payload and by event id."""

    def __init__(self) -> None:
        self.by_payload: dict[bytes, list[tuple[str | None, str | None]]] = {}
        self.by_event_id: dict[str, list[tuple[str | None, str | None]]] = {}
        self.progress = Probe()

    def message_settled(self, delivery: Delivery) -> None:
        outcome = (delivery.outcome, delivery.reason)
        self.by_payload.setdefault(delivery.message.payload, []).append(outcome)
        if delivery.event_id is not None:
            self.by_event_id.setdefault(delivery.event_id, []).append(outcome)
        self.progress.add(outcome)


@dataclass
class Report:
    """What a batch did: what was sent, how each message was settled, what was handled,
    and the dead letters that came out."""

    bad: Counter[bytes] = field(default_factory=Counter)
    good: list[str] = field(default_factory=list)
    """The ids of the good events, in the order of their `seq`."""
    settlements: Settlements = field(default_factory=Settlements)
    handled: list[int] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    consumed_from: list[tuple[str, str]] = field(default_factory=list)
    """(topic, consumer group) of the batch's listener and of its dead-letter listener."""

    def check(self) -> None:
        """Every message settled exactly once; every bad one dead-lettered with a reason
        and its letter out; every good one handled once."""
        for event_id in self.good:
            assert self.settlements.by_event_id.get(event_id) == [("ack", None)]
        for payload, sent in self.bad.items():
            outcomes = self.settlements.by_payload.get(payload, [])
            assert len(outcomes) == sent, f"{payload[:80]!r} settled {len(outcomes)}x, sent {sent}x"
            for outcome, reason in outcomes:
                assert outcome == "dead_letter", (payload[:80], outcome, reason)
                assert reason in BAD_REASONS, (payload[:80], reason)
        assert sorted(self.handled) == list(range(len(self.good))), "each good event once"
        kept = Counter(letter.original_payload() for letter in self.letters)
        expected = Counter[bytes]()
        for payload, sent in self.bad.items():
            expected[
                payload if len(payload) <= MAX_MESSAGE_BYTES else payload[:KEPT_PAYLOAD_BYTES]
            ] += sent
        assert kept == expected, "a dead letter with the payload, for each bad one"
        for letter in self.letters:
            assert letter.reason in BAD_REASONS
            assert letter.payload_size is not None
            if letter.payload_size > MAX_MESSAGE_BYTES:
                assert (letter.reason, bool(letter.omitted)) == ("too_large", True)


async def run_batch(
    backend: str, settings: Mapping[str, Any], batch: list[tuple[bytes, bool]], timeout: float
) -> Report:
    """Send `batch` (each hostile payload, then a good event when its flag says so, and
    one good event at the end) through `backend`, and report what happened."""
    topic, report = f"hostile.{uuid.uuid4().hex[:12]}", Report()
    report.consumed_from = [(topic, f"{topic}.g"), (f"{topic}.dlq", f"{topic}.dlq.g")]
    letters, handled = Probe(), Probe()
    options = {"on_unmatched": "dead_letter", "max_message_bytes": MAX_MESSAGE_BYTES}
    listener = EventListener.from_backend(
        backend, group=f"{topic}.g", listener_options=options, **settings
    )
    listener.add_instrumentation(report.settlements)

    @listener.handler(topic=topic, event=PING)
    async def handle(event: Event[PingBody]) -> None:
        handled.add(event.body.seq)

    dead_letters = EventListener.from_backend(backend, group=f"{topic}.dlq.g", **settings)

    @dead_letters.handler(topic=f"{topic}.dlq", event=DEAD_LETTER_EVENT)
    async def collect(event: Event[DeadLetter]) -> None:
        letters.add(event.body)

    async with dead_letters, listener, EventEmitter.from_backend(backend, **settings) as emitter:
        for payload, then_good in [*batch, (b"", True)]:
            if payload:
                report.bad[payload] += 1
                await emitter.producer.send(topic, payload)
            if then_good:
                event = Ping(route=topic, seq=len(report.good))
                report.good.append(event.id)
                await emitter.emit(event)
        await report.settlements.progress.wait_for(report.bad.total() + len(report.good), timeout)
        await letters.wait_for(report.bad.total(), timeout)
        await handled.wait_for(len(report.good), timeout)
    report.handled = list(handled.items)
    report.letters = list(letters.items)
    return report

"""Point 10: emit(), emit_many(), concurrent emits, and ProducerTimeout to on_timeout or raised."""

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel
from seed_fakes import Record, TimingOutProducer, Wire, WireProducer
from support import WAIT

from dispytch import (
    EmitContext,
    EventBase,
    EventEmitter,
    OutgoingMessage,
    Producer,
    ProducerTimeout,
)
from dispytch.backends import BackendSettingsError
from dispytch.emitter.producer import SupportsEnqueue
from dispytch.serialization.envelope import new_event_id


class Sent(EventBase):
    __topic__ = "mail.{to}"
    __event_type__ = "sent"

    to: str


class BatchingProducer(Producer):
    """A user's producer that sends in batches: a send returns once its batch is full."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.pending: list[str] = []
        self.batches: list[list[str]] = []
        self.flushed = asyncio.Event()

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        self.pending.append(topic)
        if len(self.pending) == self.batch_size:
            self.batches.append(self.pending)
            self.pending = []
            self.flushed.set()
        await self.flushed.wait()


async def test_emit_sends_to_the_events_topic(wire: Wire) -> None:
    await EventEmitter(WireProducer(wire)).emit(Sent(to="ada"))

    [record] = wire.sent
    assert record.topic == "mail.ada"


async def test_concurrent_emits_do_not_wait_for_each_other() -> None:
    producer = BatchingProducer(batch_size=20)
    emitter = EventEmitter(producer)

    emits = [emitter.emit(Sent(to=f"user{n}")) for n in range(20)]
    await asyncio.wait_for(asyncio.gather(*emits), WAIT)

    assert [len(batch) for batch in producer.batches] == [20], "all twenty were in flight at once"


async def test_a_timeout_goes_to_a_sync_on_timeout_callback() -> None:
    emitter, timed_out = EventEmitter(TimingOutProducer()), []

    @emitter.on_timeout
    def remember(event: EventBase) -> None:
        timed_out.append(event)

    event = Sent(to="ada")
    await emitter.emit(event)

    assert timed_out == [event]
    assert callable(remember), "on_timeout returns the function, as a decorator should"


async def test_a_timed_out_event_is_re_emitted_under_the_same_id() -> None:
    class TimesOutOnce(Producer):
        def __init__(self) -> None:
            self.payloads: list[bytes] = []

        async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
            self.payloads.append(payload)
            if len(self.payloads) == 1:
                raise ProducerTimeout("no confirmation in time")

    producer = TimesOutOnce()
    emitter, timed_out = EventEmitter(producer), []
    emitter.on_timeout(timed_out.append)

    await emitter.emit(Sent(to="ada"))
    [event] = timed_out
    await emitter.emit(event)

    ids = [json.loads(payload)["id"] for payload in producer.payloads]
    assert ids == [event.id, event.id], "the callback can log the id it sent, and retry under it"


async def test_a_timeout_goes_to_an_async_on_timeout_callback() -> None:
    emitter, timed_out = EventEmitter(TimingOutProducer()), []

    async def remember(event: EventBase) -> None:
        await asyncio.sleep(0)
        timed_out.append(event)

    emitter.on_timeout(remember)
    await emitter.emit(Sent(to="ada"))

    assert [e.to for e in timed_out] == ["ada"]  # type: ignore[attr-defined]


async def test_a_timeout_is_raised_when_configured_so() -> None:
    emitter = EventEmitter(TimingOutProducer(), raise_on_timeout=True)
    timed_out: list[EventBase] = []
    emitter.on_timeout(timed_out.append)

    with pytest.raises(ProducerTimeout, match=r"did not confirm a send to mail\.ada"):
        await emitter.emit(Sent(to="ada"))
    assert timed_out == []


async def test_a_timeout_is_raised_when_no_callback_is_set() -> None:
    with pytest.raises(ProducerTimeout):
        await EventEmitter(TimingOutProducer()).emit(Sent(to="ada"))


async def test_other_send_errors_are_not_treated_as_timeouts() -> None:
    class Refusing(Producer):
        async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
            raise ConnectionRefusedError("broker down")

    emitter, timed_out = EventEmitter(Refusing()), list[EventBase]()
    emitter.on_timeout(timed_out.append)

    with pytest.raises(ConnectionRefusedError):
        await emitter.emit(Sent(to="ada"))
    assert timed_out == []


async def test_a_backend_emitter_takes_emitter_options(memory_url: str) -> None:
    emitter = EventEmitter.from_url(memory_url, emitter_options={"raise_on_timeout": True})

    assert emitter.raise_on_timeout
    assert emitter.backend is not None
    assert emitter.backend.name == "memory"


def test_unknown_backend_settings_are_rejected_naming_the_field() -> None:
    with pytest.raises(BackendSettingsError, match="brokr"):
        EventEmitter.from_backend("memory", brokr="typo")


# -- emit_many ---------------------------------------------------------------------------------


def outcome(topic: str) -> BaseException | None:
    """What the producers below make of a send to `topic`: `mail.slow*` times out,
    `mail.down*` fails, anything else is delivered."""
    if topic.startswith("mail.slow"):
        return ProducerTimeout(f"no confirmation for {topic}")
    if topic.startswith("mail.down"):
        return ConnectionRefusedError(f"broker refused {topic}")
    return None


class SendingProducer(Producer):
    """A user's producer with `send` only: the emitter falls back to a task per event."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        await asyncio.sleep(0)  # confirmed later, as a broker would
        error = outcome(topic)
        if error is not None:
            raise error
        self.wire.sent.append(Record(topic, payload, config))


class EnqueueingProducer(Producer):
    """A user's producer with the optional `enqueue`: messages are confirmed later, by the
    event loop, with no task of their own. It must be started before the first enqueue."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.started = False
        self.enqueued: list[OutgoingMessage] = []
        self.tasks_seen: set[int] = set()

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        raise AssertionError("an enqueue-capable producer is given whole messages")

    def enqueue(self, message: OutgoingMessage) -> Awaitable[None]:
        if not self.started:
            raise RuntimeError("enqueue before start")
        if message.topic.startswith("mail.refused"):
            raise TypeError(f"cannot take a message to {message.topic}")
        self.enqueued.append(message)
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(self._confirm, message, confirmed)
        return confirmed

    def _confirm(self, message: OutgoingMessage, confirmed: asyncio.Future[None]) -> None:
        self.tasks_seen.add(len(asyncio.all_tasks()))
        error = outcome(message.topic)
        if error is not None:
            confirmed.set_exception(error)
        else:
            self.wire.sent.append(Record(message.topic, message.payload, message.config))
            confirmed.set_result(None)


MakeProducer = Callable[[Wire], Producer]
BOTH = pytest.mark.parametrize(
    "make_producer", [SendingProducer, EnqueueingProducer], ids=["send", "enqueue"]
)


def test_the_enqueue_capability_is_recognized() -> None:
    assert isinstance(EnqueueingProducer(Wire()), SupportsEnqueue)
    assert not isinstance(SendingProducer(Wire()), SupportsEnqueue)


@BOTH
async def test_emit_many_delivers_every_event_in_order(
    wire: Wire, make_producer: MakeProducer
) -> None:
    names = [f"user{n}" for n in range(50)]

    await EventEmitter(make_producer(wire)).emit_many(Sent(to=name) for name in names)

    assert [record.topic for record in wire.sent] == [f"mail.{name}" for name in names]
    assert b'"type": "sent"' in wire.sent[0].payload


async def test_emit_many_hands_a_burst_over_without_a_task_per_event(wire: Wire) -> None:
    producer = EnqueueingProducer(wire)
    tasks_before = len(asyncio.all_tasks())

    await EventEmitter(producer).emit_many([Sent(to=f"user{n}") for n in range(100)])

    assert producer.started, "emit_many starts the producer before the first enqueue"
    assert len(wire.sent) == 100
    assert producer.tasks_seen == {tasks_before}, "no task was created for any event"


async def test_emit_enqueues_on_a_producer_that_can(wire: Wire) -> None:
    producer = EnqueueingProducer(wire)

    await EventEmitter(producer).emit(Sent(to="ada"))

    assert [m.topic for m in producer.enqueued] == ["mail.ada"]
    assert [r.topic for r in wire.sent] == ["mail.ada"]


async def test_emit_restarts_a_producer_stopped_behind_its_back(wire: Wire) -> None:
    producer = EnqueueingProducer(wire)
    async with EventEmitter(producer) as emitter:
        await producer.stop()  # as a listener sharing the producer does when it stops
        await emitter.emit(Sent(to="ada"))

    assert [r.topic for r in wire.sent] == ["mail.ada"]


@BOTH
async def test_emit_many_runs_middleware_for_every_event(
    wire: Wire, make_producer: MakeProducer
) -> None:
    seen: list[str] = []

    async def tag(ctx: EmitContext, call_next: Callable[[EmitContext], Awaitable[Any]]) -> None:
        seen.append(ctx.event.to)  # type: ignore[attr-defined]
        ctx.message.headers["to"] = ctx.event.to  # type: ignore[attr-defined]
        await call_next(ctx)

    producer = make_producer(wire)
    names = ["ada", "bob", "cy"]
    await EventEmitter(producer, middleware=[tag]).emit_many([Sent(to=n) for n in names])

    assert seen == names
    assert [r.topic for r in wire.sent] == [f"mail.{n}" for n in names]
    if isinstance(producer, EnqueueingProducer):
        assert [m.headers for m in producer.enqueued] == [{"to": n} for n in names]


@BOTH
async def test_emit_many_gives_each_timeout_to_the_callback_and_raises_the_first_failure(
    wire: Wire, make_producer: MakeProducer, caplog: pytest.LogCaptureFixture
) -> None:
    emitter, timed_out = EventEmitter(make_producer(wire)), list[EventBase]()
    emitter.on_timeout(timed_out.append)
    names = ["ok1", "slow1", "down1", "ok2", "down2", "slow2"]

    with (
        caplog.at_level(logging.ERROR, logger="dispytch.emitter"),
        pytest.raises(ConnectionRefusedError, match=r"refused mail\.down1"),
    ):
        await emitter.emit_many([Sent(to=n) for n in names])

    assert [e.to for e in timed_out] == ["slow1", "slow2"]  # type: ignore[attr-defined]
    assert [r.topic for r in wire.sent] == ["mail.ok1", "mail.ok2"], "all settled first"
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.getMessage() == "emit of sent to mail.down2 failed"
    assert isinstance(logged.exc_info[1], ConnectionRefusedError)  # type: ignore[index]


@BOTH
async def test_emit_many_raises_a_timeout_when_configured_so(
    wire: Wire, make_producer: MakeProducer, caplog: pytest.LogCaptureFixture
) -> None:
    emitter = EventEmitter(make_producer(wire), raise_on_timeout=True)
    timed_out: list[EventBase] = []
    emitter.on_timeout(timed_out.append)

    with (
        caplog.at_level(logging.ERROR, logger="dispytch.emitter"),
        pytest.raises(ProducerTimeout, match=r"mail\.slow1"),
    ):
        await emitter.emit_many([Sent(to="ok"), Sent(to="slow1"), Sent(to="down")])

    assert timed_out == []
    assert [r.topic for r in wire.sent] == ["mail.ok"]
    assert any("mail.down" in r.getMessage() for r in caplog.records)


async def test_emit_many_settles_the_others_when_the_producer_refuses_one_at_once(
    wire: Wire,
) -> None:
    events = [Sent(to="ok1"), Sent(to="refused"), Sent(to="ok2")]

    with pytest.raises(TypeError, match=r"mail\.refused"):
        await EventEmitter(EnqueueingProducer(wire)).emit_many(events)

    assert [r.topic for r in wire.sent] == ["mail.ok1", "mail.ok2"]


@BOTH
async def test_emit_many_sends_nothing_when_an_event_cannot_be_serialized(
    wire: Wire, make_producer: MakeProducer
) -> None:
    class Odd(EventBase):
        __topic__ = "odd.{missing}"
        __event_type__ = "odd"

    with pytest.raises(ValueError, match="missing"):
        await EventEmitter(make_producer(wire)).emit_many([Sent(to="ada"), Odd()])
    await asyncio.sleep(0.01)

    assert wire.sent == []


async def test_emit_many_of_nothing_returns(wire: Wire) -> None:
    await EventEmitter(EnqueueingProducer(wire)).emit_many([])

    assert wire.sent == []


def test_event_ids_are_random_version_4_uuids() -> None:
    ids = [new_event_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text, "written as str(uuid.uuid4()) writes it"

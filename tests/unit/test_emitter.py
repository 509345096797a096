"""Point 10: emit(), concurrent emits, and ProducerTimeout to on_timeout or raised."""

import asyncio

import pytest
from pydantic import BaseModel
from seed_fakes import TimingOutProducer, Wire, WireProducer
from support import WAIT

from dispytch import EventBase, EventEmitter, Producer, ProducerTimeout
from dispytch.backends import BackendSettingsError


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

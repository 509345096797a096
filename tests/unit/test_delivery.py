"""Point 6: ack after success, retries, dead letters, nack, and a loop no bad message kills."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel
from seed_fakes import AsyncAckConsumer, NackingConsumer, SyncAckConsumer, Wire, WireProducer
from support import WAIT, dead_letters, eventually, fresh, let_run

from dispytch import (
    Context,
    DeadLetter,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    Message,
    RetryPolicy,
)
from dispytch.dead_letter import DEAD_LETTER_EVENT
from dispytch.testing import Probe, running


class Charged(EventBase):
    __topic__ = "payments.{account}"
    __event_type__ = "charged"

    account: str
    cents: int


class Charge(BaseModel):
    account: str
    cents: int


async def emit_charge(wire: Wire, account: str = "acme", cents: int = 100) -> None:
    await EventEmitter(WireProducer(wire)).emit(Charged(account=account, cents=cents))


class BrokenProducer(WireProducer):
    """A dead-letter producer whose broker is down."""

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        raise ConnectionError("dead-letter broker unreachable")


class RedeliveredConsumer(NackingConsumer):
    """A user's consumer whose broker reports that each message was delivered `attempt` times."""

    def __init__(self, wire: Wire, attempt: int) -> None:
        super().__init__(wire)
        self.attempt = attempt

    async def listen(self) -> AsyncIterator[Message]:
        async for msg in super().listen():
            msg.attempt = self.attempt
            yield msg


# -- ack ------------------------------------------------------------------------------------


async def test_ack_waits_for_every_matching_handler(wire: Wire) -> None:
    consumer = AsyncAckConsumer(wire)
    listener, release, done = EventListener(consumer), asyncio.Event(), Probe()

    @listener.handler(topic="payments.{account}", event="charged")
    async def fast(event: Event[Charge]) -> None:
        done.add("fast")

    @listener.handler(topic="payments.*", event="charged")
    async def slow(event: Event[Charge]) -> None:
        await release.wait()
        done.add("slow")

    async with running(listener):
        await emit_charge(wire)
        await done.wait_for(1, WAIT)
        await let_run()
        assert consumer.acked == [], "one handler is still running"
        release.set()
        await done.wait_for(2, WAIT)
        await eventually(lambda: len(consumer.acked) == 1)


async def test_a_failing_handler_among_several_is_dead_lettered_alone(
    wire: Wire, dlq_wire: Wire
) -> None:
    consumer = SyncAckConsumer(wire)
    listener, done = EventListener(consumer, producer=WireProducer(dlq_wire)), Probe()

    @listener.handler(topic="payments.{account}", event="charged")
    async def works(event: Event[Charge]) -> None:
        done.add(event.body.cents)

    @listener.handler(topic="payments.*", event="charged")
    async def breaks(event: Event[Charge]) -> None:
        raise RuntimeError("ledger locked")

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.acked) == 1)

    [(topic, letter)] = dead_letters(dlq_wire)
    assert letter.handler is not None
    assert letter.handler.endswith("breaks")
    assert (topic, done.items) == ("payments.acme.dlq", [100])


# -- retries --------------------------------------------------------------------------------


async def test_a_handler_is_retried_until_it_succeeds(wire: Wire, dlq_wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener, attempts = EventListener(consumer, producer=WireProducer(dlq_wire)), Probe()

    @listener.handler(topic="payments.{account}", event="charged", retries=2, retry_interval=0)
    async def flaky(ctx: Context) -> None:
        attempts.add(ctx.attempt)
        if ctx.attempt < 3:
            raise TimeoutError("gateway slow")

    async with running(listener):
        await emit_charge(wire)
        await attempts.wait_for(3, WAIT)
        await eventually(lambda: len(consumer.acked) == 1)

    assert attempts.items == [1, 2, 3]
    assert dlq_wire.sent == []


@pytest.mark.parametrize(
    "retry_on", [ValueError, (KeyError, ValueError), [KeyError, ValueError]], ids=str
)
async def test_retry_on_takes_a_class_tuple_or_list(
    wire: Wire, dlq_wire: Wire, retry_on: type[Exception] | tuple[type[Exception], ...]
) -> None:
    listener = EventListener(SyncAckConsumer(wire), producer=WireProducer(dlq_wire))

    @listener.handler(
        topic="payments.{account}", event="charged", retries=2, retry_on=retry_on, retry_interval=0
    )
    async def fail(event: Event[Charge]) -> None:
        if event.body.account == "retried":
            raise ValueError("listed")
        raise PermissionError("not listed")

    async with running(listener):
        await emit_charge(wire, account="retried")
        await emit_charge(wire, account="not-retried")
        await eventually(lambda: len(dlq_wire.sent) == 2)

    attempts = {letter.topic: letter.attempts for _, letter in dead_letters(dlq_wire)}
    assert attempts == {"payments.retried": 3, "payments.not-retried": 1}


@pytest.mark.parametrize("retry_on", ["ValueError", [ValueError, 42], int], ids=repr)
def test_retry_on_must_name_exception_classes(retry_on: object) -> None:
    listener = EventListener()

    async def handle() -> None: ...

    with pytest.raises(TypeError, match="retry_on takes exception classes"):
        listener.handler(topic="t", event="e", retries=1, retry_on=retry_on)(handle)  # type: ignore[arg-type]


def test_negative_retries_are_rejected() -> None:
    listener = EventListener()

    async def handle() -> None: ...

    with pytest.raises(ValueError, match="retries must be >= 0"):
        listener.handler(topic="t", event="e", retries=-1)(handle)


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(retries=10, interval=1.0, backoff=2.0, max_interval=5.0, jitter=0.1)

    first = [policy.delay(1) for _ in range(50)]
    third = [policy.delay(3) for _ in range(50)]
    tenth = [policy.delay(10) for _ in range(50)]

    assert all(0.9 <= d <= 1.1 for d in first)
    assert all(3.6 <= d <= 4.4 for d in third), "1 * 2**2, +/- 10%"
    assert all(4.5 <= d <= 5.5 for d in tenth), "capped at 5, +/- 10%"
    assert len(set(third)) > 1, "jitter spreads the waits"


def test_without_jitter_the_delays_are_exact() -> None:
    policy = RetryPolicy(retries=3, interval=0.5, backoff=3.0, jitter=0)

    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.5, 4.5]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"jitter": 1.5}, "jitter"),
        ({"interval": -1.0}, "intervals must be >= 0"),
        ({"max_interval": -1.0}, "intervals must be >= 0"),
    ],
)
def test_retry_policy_rejects_bad_values(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(retries=1, **options)  # type: ignore[arg-type]


async def test_the_listener_waits_as_the_policy_says(wire: Wire) -> None:
    asked = Probe()

    class Recorded(RetryPolicy):
        def delay(self, attempt: int) -> float:
            asked.add(attempt)
            return 0.0

    listener = EventListener(SyncAckConsumer(wire))

    @listener.handler(topic="payments.{account}", event="charged", retry=Recorded(retries=2))
    async def fail(event: Event[Charge]) -> None:
        raise RuntimeError("always")

    async with running(listener):
        await emit_charge(wire)
        await asked.wait_for(2, WAIT)

    assert asked.items == [1, 2]


# -- dead letters ---------------------------------------------------------------------------


async def test_exhausted_retries_publish_a_dead_letter_then_ack(wire: Wire, dlq_wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    acked_at_publish: list[int] = []

    class Watching(WireProducer):
        async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
            acked_at_publish.append(len(consumer.acked))
            await super().send(topic, payload, config)

    listener = EventListener(consumer, producer=Watching(dlq_wire))

    @listener.handler(topic="payments.{account}", event="charged", retries=1, retry_interval=0)
    async def decline(event: Event[Charge]) -> None:
        raise ValueError(f"card declined for {event.body.cents}")

    before = int(time.time() * 1000)
    async with running(listener):
        await emit_charge(wire, cents=250)
        await eventually(lambda: len(consumer.acked) == 1)
    after = int(time.time() * 1000)

    [(topic, letter)] = dead_letters(dlq_wire)
    assert topic == "payments.acme.dlq"
    assert letter.reason == "handler_failed"
    assert (letter.error_type, letter.error_message) == (
        "builtins.ValueError",
        "card declined for 250",
    )
    assert letter.traceback is not None
    assert "card declined" in letter.traceback
    assert letter.handler == f"{__name__}.{decline.__qualname__}"
    assert (letter.attempts, letter.topic) == (2, "payments.acme")
    assert before <= letter.failed_at <= after
    assert letter.original_payload() == wire.sent[0].payload
    assert acked_at_publish == [0], "published first, acked after"


async def test_the_dead_letter_topic_is_configurable_per_listener_and_per_handler(
    wire: Wire, dlq_wire: Wire
) -> None:
    listener = EventListener(
        SyncAckConsumer(wire), producer=WireProducer(dlq_wire), dead_letter_topic="failed.{topic}"
    )

    @listener.handler(topic="payments.listener", event="charged")
    async def by_listener(event: Event[Charge]) -> None:
        raise RuntimeError("x")

    @listener.handler(topic="payments.handler", event="charged", dead_letter_topic="payments.bin")
    async def by_handler(event: Event[Charge]) -> None:
        raise RuntimeError("y")

    async with running(listener):
        await emit_charge(wire, account="listener")
        await emit_charge(wire, account="handler")
        await eventually(lambda: len(dlq_wire.sent) == 2)

    topics = {letter.topic: topic for topic, letter in dead_letters(dlq_wire)}
    assert topics == {
        "payments.listener": "failed.payments.listener",
        "payments.handler": "payments.bin",
    }


async def test_a_handler_can_opt_out_of_dead_lettering_and_nack(wire: Wire, dlq_wire: Wire) -> None:
    consumer = NackingConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire))

    @listener.handler(topic="payments.{account}", event="charged", dead_letter_topic=None)
    async def fail(event: Event[Charge]) -> None:
        raise RuntimeError("retry later")

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.nacked) == 1)

    assert (dlq_wire.sent, consumer.acked) == ([], [])


async def test_with_no_dead_letter_topic_a_nack_capable_consumer_gets_nack(
    wire: Wire, dlq_wire: Wire
) -> None:
    consumer = NackingConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire), dead_letter_topic=None)

    @listener.handler(topic="payments.{account}", event="charged")
    async def fail(event: Event[Charge]) -> None:
        raise RuntimeError("retry later")

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.nacked) == 1)

    assert (dlq_wire.sent, consumer.acked) == ([], [])


async def test_a_payload_that_can_never_decode_is_not_nacked_into_a_loop(wire: Wire) -> None:
    consumer = NackingConsumer(wire)
    listener = EventListener(consumer, dead_letter_topic=None)

    @listener.handler(topic="payments.{account}", event="charged")
    async def never_called(event: Event[Charge]) -> None:
        raise AssertionError("an undecodable payload reached a handler")

    async with running(listener):
        wire.put("payments.acme", b"\xff not json")
        await eventually(lambda: len(consumer.acked) + len(consumer.nacked) == 1)

    assert (len(consumer.acked), consumer.nacked) == (1, []), "a redelivery could only fail again"


async def test_with_nowhere_to_send_a_failure_the_message_is_still_acked(wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer)

    @listener.handler(topic="payments.{account}", event="charged")
    async def fail(event: Event[Charge]) -> None:
        raise RuntimeError("no way out")

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.acked) == 1)


async def test_a_failed_dead_letter_publish_falls_back_to_nack(wire: Wire) -> None:
    consumer = NackingConsumer(wire)
    listener = EventListener(consumer, producer=BrokenProducer(Wire()))

    @listener.handler(topic="payments.{account}", event="charged")
    async def fail(event: Event[Charge]) -> None:
        raise RuntimeError("x")

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.nacked) == 1)

    assert consumer.acked == []


async def test_a_failed_dead_letter_publish_without_nack_acks(wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener = EventListener(consumer, producer=BrokenProducer(Wire()))

    @listener.handler(topic="payments.{account}", event="charged")
    async def fail(event: Event[Charge]) -> None:
        raise RuntimeError("x")

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.acked) == 1)


async def test_a_consumer_with_native_dead_lettering_is_used_when_enabled(
    wire: Wire, dlq_wire: Wire
) -> None:
    class NativeConsumer(NackingConsumer):
        def __init__(self, wire: Wire) -> None:
            super().__init__(wire)
            self.rejected: list[str] = []

        async def dead_letter(self, msg: Message, reason: str) -> None:
            self.rejected.append(reason)

    consumer = NativeConsumer(wire)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire), native_dead_letter=True)

    @listener.handler(topic="payments.{account}", event="charged")
    async def fail(event: Event[Charge]) -> None:
        raise RuntimeError("declined")

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.rejected) == 1)

    assert consumer.rejected == ["handler_failed: RuntimeError: declined"]
    assert (consumer.acked, consumer.nacked, dlq_wire.sent) == ([], [], [])


# -- too many deliveries --------------------------------------------------------------------


async def test_a_message_delivered_too_often_is_dead_lettered_unhandled(
    wire: Wire, dlq_wire: Wire
) -> None:
    consumer = RedeliveredConsumer(wire, attempt=4)
    listener = EventListener(consumer, producer=WireProducer(dlq_wire), max_deliveries=3)
    calls = Probe()

    @listener.handler(topic="payments.{account}", event="charged")
    async def handle(event: Event[Charge]) -> None:
        calls.add(event)

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.acked) == 1)

    [(_, letter)] = dead_letters(dlq_wire)
    assert (letter.reason, letter.attempts) == ("too_many_deliveries", 4)
    assert calls.items == []


async def test_a_message_delivered_too_often_is_not_nacked_again(wire: Wire) -> None:
    consumer = RedeliveredConsumer(wire, attempt=4)
    listener = EventListener(consumer, dead_letter_topic=None, max_deliveries=3)

    @listener.handler(topic="payments.{account}", event="charged")
    async def handle(event: Event[Charge]) -> None: ...

    async with running(listener):
        await emit_charge(wire)
        await eventually(lambda: len(consumer.acked) + len(consumer.nacked) == 1)

    assert (len(consumer.acked), consumer.nacked) == (1, []), "nacking would loop forever"


async def test_redelivery_ends_in_the_dead_letter_topic(memory_url: str) -> None:
    topic = fresh("payments")
    options = {"max_deliveries": 2, "redelivery_delay": 0.01}
    listener = EventListener.from_url(memory_url, group="billing", listener_options=options)
    dlq = EventListener.from_url(memory_url, group="operators")
    attempts, letters = Probe(), Probe()

    @listener.handler(topic=topic, event="charged", dead_letter_topic=None)
    async def fail(event: Event[Charge]) -> None:
        attempts.add(event.attempt)
        raise RuntimeError("still failing")

    @dlq.handler(topic=f"{topic}.dlq", event=DEAD_LETTER_EVENT)
    async def collect(event: Event[DeadLetter]) -> None:
        letters.add(event.body)

    class Routed(Charged):
        __topic__ = topic

    async with running(dlq), running(listener), EventEmitter.from_url(memory_url) as emitter:
        await emitter.emit(Routed(account="acme", cents=1))
        [letter] = await letters.wait_for(1, WAIT)

    assert attempts.items == [1, 2], "nacked and redelivered once, then dead-lettered"
    assert (letter.reason, letter.attempts) == ("too_many_deliveries", 3)


async def test_a_handlers_dead_letter_topic_works_on_a_backend_listener(
    memory_url: str,
) -> None:
    options = {"dead_letter_topic": None}
    listener = EventListener.from_url(memory_url, group="billing", listener_options=options)
    dlq = EventListener.from_url(memory_url, group="operators")
    letters = Probe()

    @listener.handler(topic="payments.{account}", event="charged", dead_letter_topic="payments.bin")
    async def fail(event: Event[Charge]) -> None:
        raise RuntimeError("declined")

    @dlq.handler(topic="payments.bin", event=DEAD_LETTER_EVENT)
    async def collect(event: Event[DeadLetter]) -> None:
        letters.add(event.body)

    async with running(dlq), running(listener), EventEmitter.from_url(memory_url) as emitter:
        await emitter.emit(Charged(account="acme", cents=1))
        [letter] = await letters.wait_for(1, WAIT)

    assert (letter.reason, letter.topic) == ("handler_failed", "payments.acme")


# -- the loop survives ----------------------------------------------------------------------


async def test_the_loop_survives_a_failing_ack(wire: Wire) -> None:
    class FlakyAck(SyncAckConsumer):
        def ack(self, msg: Message) -> None:
            if not self.acked:
                self.acked.append(msg)
                raise ConnectionError("ack lost")
            self.acked.append(msg)

    consumer = FlakyAck(wire)
    listener, probe = EventListener(consumer), Probe()

    @listener.handler(topic="payments.{account}", event="charged")
    async def handle(event: Event[Charge]) -> None:
        probe.add(event.body.cents)

    async with running(listener):
        await emit_charge(wire, cents=1)
        await eventually(lambda: len(consumer.acked) == 1)
        await emit_charge(wire, cents=2)
        await eventually(lambda: len(consumer.acked) == 2)

    assert probe.items == [1, 2]


async def test_the_loop_survives_handlers_that_raise(wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener, probe = EventListener(consumer), Probe()

    @listener.handler(topic="payments.{account}", event="charged")
    async def handle(event: Event[Charge]) -> None:
        probe.add(event.body.cents)
        if event.body.cents % 2:
            raise ArithmeticError("odd amount")

    async with running(listener):
        for cents in range(6):
            await emit_charge(wire, cents=cents)
        await probe.wait_for(6, WAIT)
        await eventually(lambda: len(consumer.acked) == 6)

    assert sorted(probe.items) == list(range(6))


# -- configuration errors --------------------------------------------------------------------


def test_retry_interval_is_the_wait_between_retries_as_in_0_10() -> None:
    listener = EventListener()

    @listener.handler(topic="t", event="e", retries=3, retry_interval=0.5)
    async def handle() -> None: ...

    [handler] = listener.handlers
    assert [handler.spec.retry.delay(n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("template", ["dead.{topik}", "dead.{0}", "dead.{topic"])
def test_a_bad_dead_letter_topic_is_rejected_up_front(template: str) -> None:
    with pytest.raises(ValueError, match="dead-letter topic"):
        EventListener(dead_letter_topic=template)

    async def handle() -> None: ...

    with pytest.raises(ValueError, match="dead-letter topic"):
        EventListener().handler(topic="t", event="e", dead_letter_topic=template)(handle)


def test_an_unknown_unmatched_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="on_unmatched"):
        EventListener(on_unmatched="drop")  # type: ignore[arg-type]


async def test_a_body_that_does_not_validate_is_dead_lettered_without_retries(
    wire: Wire, dlq_wire: Wire
) -> None:
    listener, calls = EventListener(SyncAckConsumer(wire), producer=WireProducer(dlq_wire)), Probe()

    @listener.handler(topic="payments.{account}", event="charged", retries=3, retry_interval=0)
    async def handle(event: Event[Charge]) -> None:
        calls.add(event)

    async with running(listener):
        body = b'{"account": "acme", "cents": "lots"}'
        wire.put(
            "payments.acme",
            b'{"id": "1", "type": "charged", "body": ' + body + b', "timestamp": 1}',
        )
        await eventually(lambda: len(dlq_wire.sent) == 1)

    [(_, letter)] = dead_letters(dlq_wire)
    assert (letter.reason, letter.attempts) == ("invalid", 1)
    assert "cents" in letter.error_message
    assert calls.items == []

"""The batch part of the conformance kit: batch handlers behave alike on every backend.

`ConformanceSuite` inherits these tests. A batch handler gets at most `max_size` events of
one ordering key per call, in order where the backend keeps order; a partial batch is
handled after `max_wait`; a body that does not validate is dead-lettered alone; a batch
that keeps failing is dead-lettered message by message after `retries + 1` calls; a
handler reporting some events failed has only those retried; an unfinished batch is not
acked, so it comes back after a restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Protocol

import pytest
from pydantic import BaseModel

from dispytch.dead_letter import DEAD_LETTER_EVENT, DeadLetter
from dispytch.emitter.emitter import EventEmitter
from dispytch.event import Event, EventBase
from dispytch.listener.batch import Batch, BatchFailed
from dispytch.listener.listener import EventListener
from dispytch.testing._kit import KitBackend, fresh
from dispytch.testing.probe import Probe, running


class _Backend(KitBackend, Protocol):
    """What these tests use of the kit's `BackendUnderTest`: the kit's backend, and how an
    event gets an ordering key."""

    @property
    def key_config(self) -> Callable[[str], BaseModel | None]: ...


class Item(EventBase):
    """The event these tests send; `route` is the topic, `lane` the ordering key's name."""

    __topic__ = "{route}"
    __event_type__ = "conformance.item"

    route: str
    lane: str
    seq: int


class ItemBody(BaseModel):
    lane: str
    seq: int


async def _emit(
    emitter: EventEmitter, backend: _Backend, topic: str, lane: str, seqs: range
) -> None:
    """Emit `seqs` in order, all with ordering key `lane`."""
    config = backend.key_config(lane)
    for seq in seqs:
        await emitter.emit(Item(route=topic, lane=lane, seq=seq).with_backend_config(config))


class BatchConformance:
    """Batch handler tests, inherited by `ConformanceSuite`."""

    @staticmethod
    def _dead_letters(backend: _Backend, topic: str, letters: Probe) -> EventListener:
        dlq = backend.listener(fresh("group"))

        @dlq.handler(topic=f"{topic}.dlq", event=DEAD_LETTER_EVENT)
        async def collect(event: Event[DeadLetter]) -> None:
            letters.add(event.body)

        return dlq

    @pytest.mark.asyncio
    async def test_batches_are_bounded_and_keep_order_per_key(self, backend: _Backend) -> None:
        _needs_several_in_flight_per_key(backend)
        topic, calls, seen = fresh("topic"), Probe(), Probe()
        listener = backend.listener(fresh("group"), max_in_flight=1500)

        @listener.handler(
            topic=topic, event=Item.__event_type__, batch=Batch(max_size=500, max_wait=0.2)
        )
        async def store(events: list[Event[ItemBody]]) -> None:
            calls.add([(e.key, e.body.lane, e.body.seq) for e in events])
            for event in events:
                seen.add(event.body.seq)

        lanes = {"a": range(0, 400), "b": range(400, 700), "c": range(700, 1000)}
        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            await asyncio.gather(
                *(_emit(emitter, backend, topic, lane, seqs) for lane, seqs in lanes.items())
            )
            await seen.wait_for(1000, backend.timeout)
        assert set(seen.items) == set(range(1000))
        assert all(1 <= len(call) <= 500 for call in calls.items), "at most max_size per call"
        assert any(len(call) > 1 for call in calls.items), "events were handled in batches"
        for call in calls.items:
            assert len({key for key, _, _ in call}) == 1, "a batch holds one ordering key"
        if backend.capabilities.ordering:
            for lane, seqs in lanes.items():
                handled = [seq for call in calls.items for _, name, seq in call if name == lane]
                firsts = list(dict.fromkeys(handled))
                assert firsts == list(seqs), f"lane {lane} handled in the order emitted"

    @pytest.mark.asyncio
    async def test_partial_batch_is_handled_after_max_wait(self, backend: _Backend) -> None:
        topic, calls = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))

        @listener.handler(
            topic=topic, event=Item.__event_type__, batch=Batch(max_size=100, max_wait=0.3)
        )
        async def store(events: list[Event[ItemBody]]) -> None:
            calls.add(sorted(e.body.seq for e in events))

        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            await _emit(emitter, backend, topic, "only", range(3))
            await calls.wait_for(1, backend.timeout)
            while sum(len(call) for call in calls.items) < 3:
                await calls.wait_for(len(calls.items) + 1, backend.timeout)
        assert sorted(seq for call in calls.items for seq in call) == [0, 1, 2]
        assert all(len(call) < 100 for call in calls.items)

    @pytest.mark.asyncio
    async def test_invalid_body_is_dead_lettered_alone(self, backend: _Backend) -> None:
        topic, seen, letters = fresh("topic"), Probe(), Probe()
        listener = backend.listener(fresh("group"))

        @listener.handler(
            topic=topic, event=Item.__event_type__, batch=Batch(max_size=20, max_wait=0.3)
        )
        async def store(events: list[Event[ItemBody]]) -> None:
            for event in events:
                seen.add(event.body.seq)

        invalid = {"id": "bad", "type": Item.__event_type__, "timestamp": 1}
        invalid["body"] = {"lane": "x", "seq": "not a number"}
        dlq = self._dead_letters(backend, topic, letters)
        async with running(dlq, settle=backend.settle), running(listener, settle=backend.settle):
            raw = EventEmitter.from_backend(backend.name, **backend.settings)
            async with raw, backend.emitter() as emitter:
                await _emit(emitter, backend, topic, "x", range(3))
                await raw.producer.send(topic, json.dumps(invalid).encode())
                await _emit(emitter, backend, topic, "x", range(3, 6))
                [letter] = await letters.wait_for(1, backend.timeout)
                await seen.wait_for(6, backend.timeout)
                await asyncio.sleep(0.3)
        assert sorted(seen.items) == list(range(6)), "the rest of the batch was handled"
        assert letter.reason == "invalid"
        assert b"not a number" in letter.original_payload()
        assert len(letters.items) == 1

    @pytest.mark.asyncio
    async def test_failing_batch_dead_letters_each_message(self, backend: _Backend) -> None:
        _needs_several_in_flight_per_key(backend)
        topic, calls, letters = fresh("topic"), Probe(), Probe()
        listener = backend.listener(fresh("group"))

        @listener.handler(
            topic=topic,
            event=Item.__event_type__,
            batch=Batch(max_size=5, max_wait=30.0),
            retries=2,
            retry_interval=0.01,
        )
        async def always_fails(events: list[Event[ItemBody]]) -> None:
            calls.add(sorted(e.body.seq for e in events))
            raise ValueError("the database is down")

        dlq = self._dead_letters(backend, topic, letters)
        async with (
            running(dlq, settle=backend.settle),
            running(listener, settle=backend.settle),
            backend.emitter() as emitter,
        ):
            await _emit(emitter, backend, topic, "k", range(5))
            await letters.wait_for(5, backend.timeout)
            await asyncio.sleep(0.3)
        assert calls.items == [[0, 1, 2, 3, 4]] * 3, "one batch, called retries + 1 times"
        assert len(letters.items) == 5, "one dead letter per message"
        sent = sorted(
            json.loads(letter.original_payload())["body"]["seq"] for letter in letters.items
        )
        assert sent == [0, 1, 2, 3, 4]
        for letter in letters.items:
            assert (letter.reason, letter.attempts) == ("handler_failed", 3)
            assert letter.error_message == "the database is down"
            assert letter.handler is not None
            assert "always_fails" in letter.handler

    @pytest.mark.asyncio
    async def test_partial_failure_retries_only_the_failed(self, backend: _Backend) -> None:
        _needs_several_in_flight_per_key(backend)
        topic, calls, letters = fresh("topic"), Probe(), Probe()
        listener = backend.listener(fresh("group"))

        @listener.handler(
            topic=topic,
            event=Item.__event_type__,
            batch=Batch(max_size=6, max_wait=30.0),
            retries=1,
            retry_interval=0.01,
        )
        async def odd_ones_fail(events: list[Event[ItemBody]]) -> None:
            calls.add(sorted(e.body.seq for e in events))
            odd = [e for e in events if e.body.seq % 2]
            if odd:
                raise BatchFailed(failed=odd, error=LookupError("no such row"))

        dlq = self._dead_letters(backend, topic, letters)
        async with (
            running(dlq, settle=backend.settle),
            running(listener, settle=backend.settle),
            backend.emitter() as emitter,
        ):
            await _emit(emitter, backend, topic, "k", range(6))
            await letters.wait_for(3, backend.timeout)
            await asyncio.sleep(0.3)
        assert calls.items == [[0, 1, 2, 3, 4, 5], [1, 3, 5]], "only the failed are retried"
        sent = sorted(
            json.loads(letter.original_payload())["body"]["seq"] for letter in letters.items
        )
        assert sent == [1, 3, 5]
        for letter in letters.items:
            assert (letter.reason, letter.attempts) == ("handler_failed", 2)
            assert letter.error_type == "builtins.LookupError"

    @pytest.mark.asyncio
    async def test_unfinished_batch_is_not_acked(self, backend: _Backend) -> None:
        _needs_several_in_flight_per_key(backend)
        caps = backend.capabilities
        if not caps.persistent:
            pytest.skip(f"backend {backend.name!r} does not declare persistent")
        topic, group = fresh("topic"), fresh("group")
        finished, stuck, again = Probe(), Probe(), Probe()
        listener = backend.listener(group)

        @listener.handler(
            topic=topic, event=Item.__event_type__, batch=Batch(max_size=5, max_wait=30.0)
        )
        async def second_batch_hangs(events: list[Event[ItemBody]]) -> None:
            if finished.items:
                stuck.add(events)
                await asyncio.Event().wait()
            finished.add(sorted(e.body.seq for e in events))

        async with backend.emitter() as emitter:
            async with running(listener, settle=backend.settle, stop_timeout=0.2):
                await _emit(emitter, backend, topic, "k", range(5))
                await finished.wait_for(1, backend.timeout)
                await _emit(emitter, backend, topic, "k", range(5, 10))
                await stuck.wait_for(1, backend.timeout)
            after = backend.listener(group)

            @after.handler(topic=topic, event=Item.__event_type__)
            async def record(event: Event[ItemBody]) -> None:
                again.add(event.body.seq)

            async with running(after, settle=backend.settle):
                await again.wait_for(5, backend.timeout)
                await asyncio.sleep(0.5)
        assert finished.items == [[0, 1, 2, 3, 4]]
        assert sorted(set(again.items)) == [5, 6, 7, 8, 9], "the finished batch was acked"


def _needs_several_in_flight_per_key(backend: _Backend) -> None:
    """Skip a test whose batches must hold several messages of one key when the backend
    declares that its consumer hands out only one such message at a time."""
    bound = backend.capabilities.max_in_flight_per_key
    if bound is not None and bound < 2:
        pytest.skip(
            f"backend {backend.name!r} declares max_in_flight_per_key={bound}: "
            "a batch of one key never holds more than one message"
        )

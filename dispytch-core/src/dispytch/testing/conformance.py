"""The universal backend suite, after Watermill's: one set of tests every backend runs.

A backend's test module subclasses `ConformanceSuite` and overrides one fixture::

    class TestMyBackend(ConformanceSuite):
        @pytest.fixture
        def backend(self) -> BackendUnderTest:
            return BackendUnderTest("mybackend", {"url": "..."})

Tests that need a capability the backend does not declare are skipped, naming it.
Every test uses fresh topic and group names, so one broker serves the whole suite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

try:
    import pytest
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the Dispytch conformance kit runs under pytest, which is not installed: pip install pytest"
    ) from None

from dispytch.backends.capabilities import Capabilities
from dispytch.backends.selection import select_backend
from dispytch.dead_letter import DEAD_LETTER_EVENT, DeadLetter
from dispytch.emitter.emitter import EventEmitter
from dispytch.event import Event, EventBase
from dispytch.listener.listener import EventListener
from dispytch.middleware import EmitContext
from dispytch.testing._kit import fresh
from dispytch.testing.batches import BatchConformance
from dispytch.testing.observability import ObservabilityConformance
from dispytch.testing.probe import Probe, running
from dispytch.testing.request_reply import RequestReplyConformance


@dataclass(frozen=True)
class BackendUnderTest:
    """How the suite builds emitters and listeners for one backend.

    `key_config(key)` returns the `__backend_config__` that gives an event an
    ordering key (None when the backend orders everything on a topic).
    `settle` is how long to wait after a listener is ready before emitting
    (for brokers whose group joins finish asynchronously); `timeout` bounds
    every wait for deliveries; `bulk` is the size of the none-lost test.
    """

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    listener_options: Mapping[str, Any] = field(default_factory=dict)
    key_config: Callable[[str], BaseModel | None] = lambda key: None
    settle: float = 0.0
    timeout: float = 30.0
    bulk: int = 2000

    @property
    def capabilities(self) -> Capabilities:
        """What the backend offers with these settings."""
        backend, settings = select_backend(self.name, self.settings)
        return backend.capabilities_for(settings)

    def emitter(self, **options: Any) -> EventEmitter:
        return EventEmitter.from_backend(self.name, emitter_options=options, **self.settings)

    def listener(self, group: str, **options: Any) -> EventListener:
        merged = {**self.listener_options, **options}
        return EventListener.from_backend(
            self.name, group=group, listener_options=merged, **self.settings
        )


class Ping(EventBase):
    """The event the suite sends; `route` is the topic."""

    __topic__ = "{route}"
    __event_type__ = "conformance.ping"

    route: str
    seq: int
    data: str = ""


class PingBody(BaseModel):
    seq: int
    data: str = ""


_ENVELOPE_ROOM = 1024
"""Bytes of an encoded `Ping` besides its `data`, with room to spare."""


class ConformanceSuite(ObservabilityConformance, RequestReplyConformance, BatchConformance):
    """Subclass it and override the `backend` fixture."""

    pytestmark = [pytest.mark.conformance]

    @pytest.fixture
    def backend(self) -> BackendUnderTest:
        raise NotImplementedError("override the `backend` fixture to return a BackendUnderTest")

    @staticmethod
    def need(backend: BackendUnderTest, *capabilities: str) -> None:
        caps = backend.capabilities
        missing = [c for c in capabilities if not getattr(caps, c)]
        if missing:
            pytest.skip(f"backend {backend.name!r} does not declare {', '.join(missing)}")

    @staticmethod
    def recording(listener: EventListener, topic: str, probe: Probe, **options: Any) -> None:
        @listener.handler(topic=topic, event=Ping.__event_type__, **options)
        async def record(event: Event[PingBody]) -> None:
            probe.add(event)

    # -- delivery ----------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_round_trip(self, backend: BackendUnderTest) -> None:
        topic, probe = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))
        self.recording(listener, topic, probe)
        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            await emitter.emit(Ping(route=topic, seq=7, data="hello"))
            [event] = await probe.wait_for(1, backend.timeout)
        assert event.body == PingBody(seq=7, data="hello")
        assert (event.topic, event.type) == (topic, Ping.__event_type__)
        assert event.id
        assert event.timestamp > 0
        assert event.attempt >= 1

    @pytest.mark.asyncio
    async def test_emit_right_after_start_is_delivered(self, backend: BackendUnderTest) -> None:
        topic, probe = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))
        self.recording(listener, topic, probe)
        async with backend.emitter() as emitter:
            await listener.start()
            try:
                await emitter.emit(Ping(route=topic, seq=1))
                [event] = await probe.wait_for(1, backend.timeout)
            finally:
                await listener.stop()
        assert event.body.seq == 1

    @pytest.mark.asyncio
    async def test_a_started_listener_is_healthy(self, backend: BackendUnderTest) -> None:
        listener = backend.listener(fresh("group"))
        self.recording(listener, fresh("topic"), Probe())
        await listener.start()
        try:
            health = await listener.health()
        finally:
            await listener.stop()
        assert health.ready, health.reason
        assert health.consuming
        assert health.backend_reachable is not False, "ping() is optional; if there, it answers"
        assert not (await listener.health()).consuming

    @pytest.mark.asyncio
    async def test_topic_isolation(self, backend: BackendUnderTest) -> None:
        first, second = fresh("topic"), fresh("topic")
        got_first, got_second = Probe(), Probe()
        listener = backend.listener(fresh("group"))
        self.recording(listener, first, got_first)
        self.recording(listener, second, got_second)
        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            for seq in range(3):
                await emitter.emit(Ping(route=first, seq=seq))
            await emitter.emit(Ping(route=second, seq=100))
            await got_first.wait_for(3, backend.timeout)
            await got_second.wait_for(1, backend.timeout)
            await asyncio.sleep(0.2)
        assert sorted(e.body.seq for e in got_first.items) == [0, 1, 2]
        assert [e.body.seq for e in got_second.items] == [100]

    @pytest.mark.asyncio
    async def test_many_messages_none_lost(self, backend: BackendUnderTest) -> None:
        topic, probe = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))
        self.recording(listener, topic, probe)
        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            await asyncio.gather(
                *(emitter.emit(Ping(route=topic, seq=i)) for i in range(backend.bulk))
            )
            await probe.wait_for(backend.bulk, backend.timeout)
        assert {e.body.seq for e in probe.items} == set(range(backend.bulk))

    @pytest.mark.asyncio
    async def test_concurrent_emits(self, backend: BackendUnderTest) -> None:
        topic, probe = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))
        self.recording(listener, topic, probe)
        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            emits = [
                asyncio.create_task(emitter.emit(Ping(route=topic, seq=i))) for i in range(500)
            ]
            await asyncio.gather(*emits)
            await probe.wait_for(500, backend.timeout)
        assert sorted(e.body.seq for e in probe.items) == list(range(500))

    @pytest.mark.asyncio
    async def test_large_payload(self, backend: BackendUnderTest) -> None:
        """A 1 MB event, or the largest the backend declares it carries."""
        topic, probe = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))
        self.recording(listener, topic, probe)
        limit = backend.capabilities.max_payload_bytes
        data = "x" * (1_000_000 if limit is None else min(1_000_000, limit - _ENVELOPE_ROOM))
        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            await emitter.emit(Ping(route=topic, seq=1, data=data))
            [event] = await probe.wait_for(1, backend.timeout)
        assert event.body.data == data

    @pytest.mark.asyncio
    async def test_payload_over_the_declared_limit_is_refused(
        self, backend: BackendUnderTest
    ) -> None:
        limit = backend.capabilities.max_payload_bytes
        if limit is None:
            pytest.skip(f"backend {backend.name!r} declares no payload limit")
        async with backend.emitter() as emitter:
            with pytest.raises(Exception):  # noqa: B017, PT011 - the backend's own error type
                await emitter.emit(Ping(route=fresh("topic"), seq=1, data="x" * limit))

    @pytest.mark.asyncio
    async def test_order_per_key(self, backend: BackendUnderTest) -> None:
        self.need(backend, "ordering")
        topic, probe = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))

        @listener.handler(topic=topic, event=Ping.__event_type__)
        async def slow(event: Event[PingBody]) -> None:
            await asyncio.sleep(0.001 * (event.body.seq % 3))
            probe.add(event.body.seq)

        config = backend.key_config("the-key")
        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            for seq in range(200):
                await emitter.emit(Ping(route=topic, seq=seq).with_backend_config(config))
            await probe.wait_for(200, backend.timeout)
        assert probe.items == list(range(200))

    @pytest.mark.asyncio
    async def test_headers_round_trip(self, backend: BackendUnderTest) -> None:
        self.need(backend, "headers")
        topic, probe = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"))
        self.recording(listener, topic, probe)

        async def trace(ctx: EmitContext, call_next: Callable[[EmitContext], Any]) -> None:
            ctx.message.headers["traceparent"] = "00-abc-def-01"
            await call_next(ctx)

        async with (
            running(listener, settle=backend.settle),
            backend.emitter(middleware=[trace]) as emitter,
        ):
            await emitter.emit(Ping(route=topic, seq=1))
            [event] = await probe.wait_for(1, backend.timeout)
        assert event.headers.get("traceparent") == "00-abc-def-01"

    # -- groups ------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_competing_consumers_in_a_group(self, backend: BackendUnderTest) -> None:
        self.need(backend, "consumer_groups")
        topic, group, probe = fresh("topic"), fresh("group"), Probe()
        first, second = backend.listener(group), backend.listener(group)
        self.recording(first, topic, probe)
        self.recording(second, topic, probe)
        async with running(first, settle=backend.settle), running(second, settle=backend.settle):
            async with backend.emitter() as emitter:
                await asyncio.gather(*(emitter.emit(Ping(route=topic, seq=i)) for i in range(300)))
                await probe.wait_for(300, backend.timeout)
            await asyncio.sleep(0.3)
        seqs = [e.body.seq for e in probe.items]
        assert sorted(seqs) == list(range(300)), "each event handled exactly once within one group"

    @pytest.mark.asyncio
    async def test_fan_out_across_groups(self, backend: BackendUnderTest) -> None:
        topic, one, other = fresh("topic"), Probe(), Probe()
        first, second = backend.listener(fresh("group")), backend.listener(fresh("group"))
        self.recording(first, topic, one)
        self.recording(second, topic, other)
        async with running(first, settle=backend.settle), running(second, settle=backend.settle):
            async with backend.emitter() as emitter:
                for seq in range(50):
                    await emitter.emit(Ping(route=topic, seq=seq))
            await one.wait_for(50, backend.timeout)
            await other.wait_for(50, backend.timeout)
        assert (
            {e.body.seq for e in one.items} == {e.body.seq for e in other.items} == set(range(50))
        )

    # -- failure and redelivery --------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_unacked_message_redelivered_after_restart(
        self, backend: BackendUnderTest
    ) -> None:
        self.need(backend, "persistent")
        topic, group = fresh("topic"), fresh("group")
        started, redelivered = Probe(), Probe()
        stuck = backend.listener(group)

        @stuck.handler(topic=topic, event=Ping.__event_type__)
        async def never_finishes(event: Event[PingBody]) -> None:
            started.add(event)
            await asyncio.Event().wait()

        async with backend.emitter() as emitter:
            async with running(stuck, settle=backend.settle, stop_timeout=0.2):
                await emitter.emit(Ping(route=topic, seq=1))
                await started.wait_for(1, backend.timeout)
            restarted = backend.listener(group)
            self.recording(restarted, topic, redelivered)
            async with running(restarted, settle=backend.settle):
                [event] = await redelivered.wait_for(1, backend.timeout)
        assert event.body.seq == 1

    @pytest.mark.asyncio
    async def test_graceful_stop_finishes_in_flight(self, backend: BackendUnderTest) -> None:
        topic, group = fresh("topic"), fresh("group")
        started, finished = Probe(), Probe()
        listener = backend.listener(group)

        @listener.handler(topic=topic, event=Ping.__event_type__)
        async def slow(event: Event[PingBody]) -> None:
            started.add(event.body.seq)
            await asyncio.sleep(0.3)
            finished.add(event.body.seq)

        async with backend.emitter() as emitter:
            async with running(listener, settle=backend.settle, stop_timeout=backend.timeout):
                for seq in range(5):
                    event = Ping(route=topic, seq=seq).with_backend_config(
                        backend.key_config(str(seq))
                    )
                    await emitter.emit(event)
                await started.wait_for(5, backend.timeout)
            assert sorted(finished.items) == list(range(5)), "stop() let in-flight handlers finish"
            if backend.capabilities.persistent:
                again = Probe()
                after = backend.listener(group)
                self.recording(after, topic, again)
                async with running(after, settle=backend.settle):
                    await emitter.emit(Ping(route=topic, seq=99))
                    await again.wait_for(1, backend.timeout)
                    await asyncio.sleep(0.3)
                assert [e.body.seq for e in again.items] == [99], "finished messages were acked"

    @pytest.mark.asyncio
    async def test_nack_leads_to_redelivery(self, backend: BackendUnderTest) -> None:
        self.need(backend, "redelivery")
        topic, probe = fresh("topic"), Probe()
        listener = backend.listener(fresh("group"), dead_letter_topic=None, redelivery_delay=0.05)

        @listener.handler(topic=topic, event=Ping.__event_type__)
        async def fails_once(event: Event[PingBody]) -> None:
            probe.add(event.attempt)
            if len(probe.items) == 1:
                raise RuntimeError("first delivery fails")

        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            await emitter.emit(Ping(route=topic, seq=1))
            attempts = await probe.wait_for(2, backend.timeout)
        assert attempts[1] >= attempts[0]

    @pytest.mark.asyncio
    async def test_handler_failure_retried_then_dead_lettered(
        self, backend: BackendUnderTest
    ) -> None:
        topic, calls, letters = fresh("topic"), Probe(), Probe()
        listener = backend.listener(fresh("group"))

        @listener.handler(topic=topic, event=Ping.__event_type__, retries=2, retry_interval=0.01)
        async def always_fails(event: Event[PingBody]) -> None:
            calls.add(event.body.seq)
            raise ValueError(f"cannot handle {event.body.seq}")

        dlq = self.dead_letter_listener(backend, topic, letters)
        async with (
            running(dlq, settle=backend.settle),
            running(listener, settle=backend.settle),
            backend.emitter() as emitter,
        ):
            await emitter.emit(Ping(route=topic, seq=5))
            [letter] = await letters.wait_for(1, backend.timeout)
        assert calls.items == [5, 5, 5], "one attempt plus two retries"
        assert letter.reason == "handler_failed"
        assert letter.attempts == 3
        assert letter.error_type == "builtins.ValueError"
        assert letter.error_message == "cannot handle 5"
        assert letter.topic == topic
        assert letter.handler
        assert "always_fails" in letter.handler
        assert b'"seq": 5' in letter.original_payload()

    @pytest.mark.asyncio
    async def test_undecodable_payload_dead_lettered(self, backend: BackendUnderTest) -> None:
        topic, probe, letters = fresh("topic"), Probe(), Probe()
        listener = backend.listener(fresh("group"))
        self.recording(listener, topic, probe)
        dlq = self.dead_letter_listener(backend, topic, letters)
        garbage = b"\xff\x00 not an event"
        async with running(dlq, settle=backend.settle), running(listener, settle=backend.settle):
            raw = EventEmitter.from_backend(backend.name, **backend.settings)
            async with raw, backend.emitter() as emitter:
                await raw.producer.send(topic, garbage)
                [letter] = await letters.wait_for(1, backend.timeout)
                await emitter.emit(Ping(route=topic, seq=2))
                [event] = await probe.wait_for(1, backend.timeout)
        assert letter.reason == "undecodable"
        assert letter.original_payload() == garbage
        assert event.body.seq == 2, "the listener keeps going after a bad message"

    @pytest.mark.asyncio
    async def test_hostile_payloads_are_each_dead_lettered_once(
        self, backend: BackendUnderTest
    ) -> None:
        topic, probe, letters = fresh("topic"), Probe(), Probe()
        listener = backend.listener(fresh("group"), on_unmatched="dead_letter")
        self.recording(listener, topic, probe)
        dlq = self.dead_letter_listener(backend, topic, letters)
        hostile = _hostile_payloads()
        async with running(dlq, settle=backend.settle), running(listener, settle=backend.settle):
            raw = EventEmitter.from_backend(backend.name, **backend.settings)
            async with raw, backend.emitter() as emitter:
                for seq, payload in enumerate(hostile):
                    await raw.producer.send(topic, payload)
                    await emitter.emit(Ping(route=topic, seq=seq))
                await letters.wait_for(len(hostile), backend.timeout)
                await probe.wait_for(len(hostile), backend.timeout)
                await asyncio.sleep(0.3)
        reasons = {letter.original_payload(): letter.reason for letter in letters.items}
        assert reasons == hostile, "each hostile payload dead-lettered once, with its reason"
        assert sorted(e.body.seq for e in probe.items) == list(range(len(hostile)))

    def dead_letter_listener(
        self, backend: BackendUnderTest, topic: str, letters: Probe
    ) -> EventListener:
        dlq = backend.listener(fresh("group"))

        @dlq.handler(topic=f"{topic}.dlq", event=DEAD_LETTER_EVENT)
        async def collect(event: Event[DeadLetter]) -> None:
            letters.add(event.body)

        return dlq


def _hostile_payloads() -> dict[bytes, str]:
    """Payloads a listener must settle without choking, with the reason each is dead-lettered."""
    digits = b"9" * 5_000
    nested_body: Any = {}
    for _ in range(900):
        nested_body = {"seq": nested_body}

    def envelope(body: Any, event_type: str = Ping.__event_type__) -> bytes:
        doc = {"id": "hostile", "type": event_type, "body": body, "timestamp": 1}
        return json.dumps(doc).encode()

    return {
        b"\xff\xfe not UTF-8": "undecodable",
        b"[" * 100_000 + b"]" * 100_000: "undecodable",
        digits: "undecodable",
        b'{"id": "\\ud800", "type": "t", "body": ' + digits + b', "timestamp": 1}': "undecodable",
        b'{"id": 1, "type": "conformance.ping", "body": {"seq": 1}, "timestamp": 1}': "undecodable",
        envelope({"seq": 1})[:-20]: "undecodable",
        envelope(nested_body): "invalid",
        envelope({"seq": "x" * 200_000}): "invalid",
        envelope({"seq": 1}, event_type="conformance.unknown"): "unmatched",
    }

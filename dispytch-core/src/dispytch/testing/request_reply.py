"""The request-reply part of the conformance kit: what `emitter.request()` must do on every
backend that carries headers, and how it is refused on one that does not.

`ConformanceSuite` inherits these tests.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel

from dispytch.backends.memory import MemoryConsumer, get_broker
from dispytch.backends.requirements import CapabilityError
from dispytch.emitter.emitter import EventEmitter
from dispytch.emitter.producer import Producer
from dispytch.emitter.request_reply import RequestFailed, RequestTimeout
from dispytch.event import Event, EventBase
from dispytch.routing import TopicPattern
from dispytch.testing._kit import KitBackend, fresh, until
from dispytch.testing.probe import running


class Ask(EventBase):
    """The request these tests send."""

    __topic__ = "{route}"
    __event_type__ = "conformance.ask"

    route: str
    seq: int


class AskBody(BaseModel):
    seq: int


class Answer(BaseModel):
    """The reply these tests expect."""

    seq: int
    doubled: int


class NeedsMore(BaseModel):
    """A body no `Ask` validates as."""

    seq: int
    missing: str


class _SendOnly(Producer):
    """A producer with `send` alone, so it cannot carry headers."""

    def __init__(self, inner: Producer) -> None:
        self.inner = inner

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        await self.inner.send(topic, payload, config)


class RequestReplyConformance:
    """Request-reply tests; skipped on a backend without headers except the refusal."""

    @staticmethod
    def _needs_headers(backend: KitBackend) -> None:
        if not backend.capabilities.headers:
            pytest.skip(f"backend {backend.name!r} does not declare headers")

    @pytest.mark.asyncio
    async def test_concurrent_requests_each_get_their_own_reply(self, backend: KitBackend) -> None:
        self._needs_headers(backend)
        topic = fresh("topic")
        listener = backend.listener(fresh("group"), ordered=False)

        @listener.handler(topic=topic, event=Ask.__event_type__)
        async def double(event: Event[AskBody]) -> Answer:
            await asyncio.sleep(0.001 * (event.body.seq % 5))  # replies out of order
            return Answer(seq=event.body.seq, doubled=2 * event.body.seq)

        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            replies = await asyncio.gather(
                *(
                    emitter.request(
                        Ask(route=topic, seq=seq), reply=Answer, timeout=backend.timeout
                    )
                    for seq in range(100)
                )
            )
        assert replies == [Answer(seq=seq, doubled=2 * seq) for seq in range(100)]

    @pytest.mark.asyncio
    async def test_failing_handler_raises_request_failed(self, backend: KitBackend) -> None:
        self._needs_headers(backend)
        topic = fresh("topic")
        listener = backend.listener(fresh("group"))

        @listener.handler(topic=topic, event=Ask.__event_type__, retries=2, retry_interval=0.01)
        async def always_fails(event: Event[AskBody]) -> Answer:
            raise ValueError(f"no answer to {event.body.seq}")

        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            with pytest.raises(RequestFailed) as failed:
                await emitter.request(
                    Ask(route=topic, seq=3), reply=Answer, timeout=backend.timeout
                )
        assert failed.value.reason == "handler_failed"
        assert failed.value.attempts == 3, "one attempt plus two retries, then the error reply"
        assert failed.value.error_type == "builtins.ValueError"
        assert failed.value.error_message == "no answer to 3"
        assert failed.value.handler is not None
        assert "always_fails" in failed.value.handler

    @pytest.mark.asyncio
    async def test_invalid_request_or_reply_raises_request_failed(
        self, backend: KitBackend
    ) -> None:
        self._needs_headers(backend)
        strict_topic, answering_topic = fresh("topic"), fresh("topic")
        listener = backend.listener(fresh("group"))

        @listener.handler(topic=strict_topic, event=Ask.__event_type__)
        async def strict(event: Event[NeedsMore]) -> Answer:
            return Answer(seq=event.body.seq, doubled=0)

        @listener.handler(topic=answering_topic, event=Ask.__event_type__)
        async def double(event: Event[AskBody]) -> Answer:
            return Answer(seq=event.body.seq, doubled=2 * event.body.seq)

        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            with pytest.raises(RequestFailed) as invalid:
                await emitter.request(
                    Ask(route=strict_topic, seq=1), reply=Answer, timeout=backend.timeout
                )
            with pytest.raises(RequestFailed) as not_an_answer:
                await emitter.request(
                    Ask(route=answering_topic, seq=2), reply=NeedsMore, timeout=backend.timeout
                )
        assert invalid.value.reason == "invalid", "the request's body did not validate"
        assert "missing" in (invalid.value.error_message or "")
        assert not_an_answer.value.reason == "invalid_reply", "the reply is not a NeedsMore"

    @pytest.mark.asyncio
    async def test_request_times_out_and_a_late_reply_is_dropped(
        self, backend: KitBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        self._needs_headers(backend)
        topic = fresh("topic")
        listener = backend.listener(fresh("group"))
        go_on, answered = asyncio.Event(), asyncio.Event()

        @listener.handler(topic=topic, event=Ask.__event_type__)
        async def slow(event: Event[AskBody]) -> Answer:
            await go_on.wait()
            answered.set()
            return Answer(seq=event.body.seq, doubled=2 * event.body.seq)

        caplog.set_level(logging.WARNING, logger="dispytch.emitter")
        async with running(listener, settle=backend.settle), backend.emitter() as emitter:
            ask = Ask(route=topic, seq=4)
            with pytest.raises(RequestTimeout) as timed_out:
                await emitter.request(ask, reply=Answer, timeout=0.5)
            go_on.set()
            await asyncio.wait_for(answered.wait(), backend.timeout)
            await _logged(caplog, f"to request {ask.id}, which is not waiting", backend.timeout)
            again = await emitter.request(
                Ask(route=topic, seq=5), reply=Answer, timeout=backend.timeout
            )
        assert timed_out.value.request_id == ask.id
        assert again == Answer(seq=5, doubled=10), "the emitter goes on after a timeout"

    @pytest.mark.asyncio
    async def test_request_refused_without_headers(self, backend: KitBackend) -> None:
        if not backend.capabilities.headers:
            async with backend.emitter() as emitter:
                with pytest.raises(CapabilityError, match="needs headers"):
                    await emitter.request(Ask(route=fresh("topic"), seq=1), reply=Answer)
            return
        async with backend.emitter() as inner:
            emitter = EventEmitter(_SendOnly(inner.producer))
            emitter.receive_replies_with(
                lambda topic: MemoryConsumer(get_broker(), topic, [TopicPattern(topic)])
            )
            with pytest.raises(CapabilityError, match="needs headers"):
                await emitter.request(Ask(route=fresh("topic"), seq=1), reply=Answer)


async def _logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float) -> None:
    await until(
        lambda: any(text in record.getMessage() for record in caplog.records),
        timeout,
        f"a log record saying {text!r}",
    )

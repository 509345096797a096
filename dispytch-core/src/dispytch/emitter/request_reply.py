"""Request-reply for an emitter: one reply destination and one consumer reading it, shared
by any number of concurrent requests, each waiting for the reply with its correlation id.

The wire format is in `dispytch.reply`. Where replies are received is the backend's
choice: a backend may register `create_reply_consumer(settings, topic)` (a queue the
broker deletes when the emitter goes, say); without one, the emitter's replies topic is
consumed like any other, in a consumer group of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.requirements import CapabilityError
from dispytch.dead_letter import error_type_name
from dispytch.lifecycle import start_if_possible, stop_if_possible
from dispytch.listener.consumer import Consumer, Message
from dispytch.reply import CORRELATION_ID, ERROR_REPLY_EVENT, REPLIES_TOPIC_PREFIX, ReplyError
from dispytch.routing import TopicPattern
from dispytch.serialization import Envelope, Serializer

logger = logging.getLogger("dispytch.emitter")

ReplyConsumerFactory = Callable[[str], Consumer]
"""Makes the consumer of an emitter's replies, given the topic they are sent to."""


class RequestFailed(Exception):
    """A request got an error reply instead of an answer (its handler failed after its
    retries, its body did not validate ...), or its reply could not be read.

    `reason` says which (a dead-letter reason, `no_reply`, `invalid_reply` ...);
    `error_type` and `error_message` are those of the error, `handler` the handler's name.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        request_id: str,
        error_type: str | None = None,
        error_message: str | None = None,
        handler: str | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.request_id = request_id
        self.error_type = error_type
        self.error_message = error_message
        self.handler = handler
        self.attempts = attempts


class RequestTimeout(TimeoutError):
    """No reply to a request arrived in time; a reply arriving later is dropped (and logged)."""

    def __init__(self, message: str, *, request_id: str) -> None:
        super().__init__(message)
        self.request_id = request_id


def replies_topic() -> str:
    """A fresh topic for one emitter's replies."""
    return f"{REPLIES_TOPIC_PREFIX}{uuid.uuid4().hex}"


def backend_reply_consumers(backend: Backend, settings: Any) -> ReplyConsumerFactory:
    """How an emitter on `backend` receives its replies: the backend's own way, or a
    consumer group of its own on the replies topic. Raises `CapabilityError` when the
    backend cannot carry headers, which hold the reply destination and correlation id."""
    if not backend.capabilities_for(settings).headers:
        offered = ", ".join(backend.capabilities_for(settings).offered()) or "none"
        raise CapabilityError(
            f"request() needs headers, which backend {backend.name!r} does not offer (it "
            f"offers: {offered}): a request carries its reply destination and correlation "
            "id in headers. Use a backend with headers for requests (Redis in streams mode, "
            "not pubsub), or emit events without waiting for replies"
        )
    create = backend.create_reply_consumer

    def consumer(topic: str) -> Consumer:
        if create is not None:
            return create(settings, topic)
        return backend.create_consumer(settings, Subscription(topic, (TopicPattern(topic),)))

    return consumer


class ReplyInbox:
    """An emitter's replies: the consumer of its replies topic, and the requests waiting.

    `expect(id)` registers a request before it is sent; the reply carrying `id` in its
    `CORRELATION_ID` header resolves it. A reply nobody waits for (any more) is logged
    and dropped. Every reply is acked once read.
    """

    def __init__(self, consumer: Consumer, topic: str, serializer: Serializer) -> None:
        self.consumer = consumer
        self.topic = topic
        self.serializer = serializer
        self._waiting: dict[str, asyncio.Future[Envelope]] = {}
        self._reading: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True from `start()` until `stop()`, unless reading replies failed."""
        return self._reading is not None and not self._reading.done()

    async def start(self) -> None:
        """Start the consumer and return once replies are being read."""
        await start_if_possible(self.consumer)
        self._reading = asyncio.create_task(self._read(), name=f"replies {self.topic}")

    async def stop(self) -> None:
        """Stop reading; requests still waiting fail with `RequestFailed`."""
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
            self._reading = None
        self._fail_waiting("the emitter stopped before the reply arrived", "emitter_stopped")
        await stop_if_possible(self.consumer)

    def expect(self, request_id: str) -> asyncio.Future[Envelope]:
        """The future the reply to request `request_id` resolves."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        """Stop waiting for the reply to `request_id` (it timed out or was not sent)."""
        self._waiting.pop(request_id, None)

    async def _read(self) -> None:
        try:
            async for msg in self.consumer.listen():
                self._resolve(msg)
                await _maybe_await(self.consumer.ack(msg))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.error("reading replies from %s failed: %r", self.topic, exc)
            self._fail_waiting(f"reading replies failed: {exc!r}", "reply_consumer_failed")

    def _resolve(self, msg: Message) -> None:
        request_id = msg.headers.get(CORRELATION_ID)
        future = None if request_id is None else self._waiting.pop(request_id, None)
        if future is None or future.done():
            logger.warning(
                "dropped a reply on %s to request %s, which is not waiting for it "
                "(it timed out, or was answered already)",
                self.topic,
                request_id,
                extra={"topic": self.topic, "event_id": request_id, "outcome": "dropped"},
            )
            return
        try:
            future.set_result(self.serializer.loads(msg.payload))
        except Exception as exc:
            assert request_id is not None
            future.set_exception(
                RequestFailed(
                    f"the reply to request {request_id} cannot be decoded: {exc}",
                    reason="undecodable_reply",
                    request_id=request_id,
                )
            )

    def _fail_waiting(self, why: str, reason: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for request_id, future in waiting.items():
            if not future.done():
                future.set_exception(RequestFailed(why, reason=reason, request_id=request_id))


def reply_value(envelope: Envelope, reply: type[Any], request_id: str, what: str) -> Any:
    """The answer in the reply `envelope`, validated as `reply`; `RequestFailed` for an
    error reply or an answer that is not a `reply`."""
    if envelope.type == ERROR_REPLY_EVENT:
        try:
            error = ReplyError.model_validate(envelope.body)
        except Exception as exc:
            raise RequestFailed(
                f"{what} failed, and its error reply cannot be read: {exc}",
                reason="undecodable_reply",
                request_id=request_id,
            ) from None
        raise RequestFailed(
            f"{what} failed ({error.reason}) in handler {error.handler} after "
            f"{error.attempts} attempt(s): {error.error_type}: {error.error_message}",
            reason=error.reason,
            request_id=request_id,
            error_type=error.error_type,
            error_message=error.error_message,
            handler=error.handler,
            attempts=error.attempts,
        )
    try:
        if isinstance(reply, type) and issubclass(reply, BaseModel):
            return reply.model_validate(envelope.body)
        return TypeAdapter(reply).validate_python(envelope.body)
    except Exception as exc:
        raise RequestFailed(
            f"the reply to {what} is not a valid {getattr(reply, '__name__', reply)}: {exc}",
            reason="invalid_reply",
            request_id=request_id,
            error_type=error_type_name(exc),
            error_message=str(exc),
        ) from None


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result

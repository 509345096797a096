"""`EventEmitter`: turns typed events into messages and hands them to a producer."""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from typing_extensions import Self

from dispytch.backends.backend import Backend
from dispytch.backends.selection import select_backend, settings_from_config
from dispytch.emitter.producer import (
    OutgoingMessage,
    Producer,
    ProducerTimeout,
    SupportsPublish,
    publisher,
)
from dispytch.event import EventBase
from dispytch.lifecycle import start_if_possible, stop_if_possible
from dispytch.middleware import Chain, EmitContext, Middleware
from dispytch.serialization import Envelope, JSONSerializer, Serializer

logger = logging.getLogger("dispytch.emitter")

TimeoutCallback = Callable[[EventBase], Awaitable[None] | None]
C = TypeVar("C", bound=TimeoutCallback)


class EventEmitter:
    """Emits `EventBase` instances through a `Producer`.

    Emits run concurrently (a batching producer batches them). A `ProducerTimeout`
    goes to the `on_timeout` callback, or is raised when `raise_on_timeout=True`
    or no callback is set. `middleware` runs around every send and may add headers.
    """

    def __init__(
        self,
        producer: Producer,
        *,
        serializer: Serializer | None = None,
        middleware: Sequence[Middleware[EmitContext]] = (),
        raise_on_timeout: bool = False,
    ) -> None:
        self.producer = producer
        self.serializer: Serializer = serializer or JSONSerializer()
        self.raise_on_timeout = raise_on_timeout
        self.backend: Backend | None = None
        self._timeout_callback: TimeoutCallback | None = None
        self._chain = (
            Chain.build(list(middleware), self._past_middleware).run if middleware else None
        )
        self._publish = publisher(producer)
        self._carries_headers = isinstance(producer, SupportsPublish)
        self._warned_headers = False

    @classmethod
    def from_backend(
        cls, name: str, *, emitter_options: Mapping[str, Any] | None = None, **settings: Any
    ) -> Self:
        """An emitter on the backend registered as `name`, with validated `settings`."""
        return cls._on(*select_backend(name, settings), emitter_options)

    @classmethod
    def from_url(cls, url: str, *, emitter_options: Mapping[str, Any] | None = None) -> Self:
        """An emitter on the backend named by the URL's scheme."""
        return cls._on(*select_backend(url), emitter_options)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, emitter_options: Mapping[str, Any] | None = None
    ) -> Self:
        """An emitter from a mapping such as `os.environ`; see `dispytch.backends.selection`."""
        spec, settings, _ = settings_from_config(config)
        return cls._on(*select_backend(spec, settings), emitter_options)

    @classmethod
    def _on(cls, backend: Backend, settings: Any, options: Mapping[str, Any] | None) -> Self:
        emitter = cls(backend.create_producer(settings), **(options or {}))
        emitter.backend = backend
        return emitter

    def on_timeout(self, callback: C) -> C:
        """Register `callback(event)` (sync or async) for sends that time out; a decorator."""
        self._timeout_callback = callback
        return callback

    async def emit(self, event: EventBase) -> None:
        """Serialize `event` and send it to the topic formatted from its fields."""
        envelope = Envelope(
            str(uuid.uuid4()),
            event.event_type(),
            event.model_dump(mode="json", by_alias=True),
            int(time.time() * 1000),
        )
        message = OutgoingMessage(event.topic(), self.serializer.dumps(envelope), _config(event))
        try:
            if self._chain is None:
                await self._deliver(message)
            else:
                await self._chain(EmitContext(event, message))
        except ProducerTimeout:
            if self.raise_on_timeout or self._timeout_callback is None:
                raise
            logger.warning("emit of %s to %s timed out", event.event_type(), message.topic)
            result = self._timeout_callback(event)
            if inspect.isawaitable(result):
                await result

    def _past_middleware(self, ctx: EmitContext) -> Awaitable[None]:
        return self._deliver(ctx.message)

    async def _deliver(self, message: OutgoingMessage) -> None:
        """Hand an encoded message to the producer, bypassing middleware."""
        if message.headers and not self._carries_headers and not self._warned_headers:
            self._warned_headers = True
            logger.warning(
                "%s cannot carry headers; headers set by emitter middleware are dropped",
                type(self.producer).__name__,
            )
        await self._publish(message)

    async def start(self) -> None:
        await start_if_possible(self.producer)

    async def stop(self) -> None:
        await stop_if_possible(self.producer)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _config(event: EventBase) -> BaseModel | None:
    """The event's backend config; a config with `render(fields)` gets the event's fields."""
    config = event.backend_config()
    render = getattr(config, "render", None)
    if callable(render):
        rendered: BaseModel = render(
            {name: getattr(event, name) for name in type(event).model_fields}
        )
        return rendered
    return config

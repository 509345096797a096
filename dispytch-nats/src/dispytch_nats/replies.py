"""Where one emitter's replies to its requests arrive in JetStream mode: a durable consumer
of its own on the replies subject, deleted with the replies it read when the emitter stops.

The replies subject lives in the stream of its first token (`dispytch`), created on first
use like any other; an emitter that died leaves its consumer and replies there, until the
stream's limits (`max_age`) drop them. In core mode replies are a plain subscription and
nothing is left behind.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.errors import Error as NatsError

from dispytch.backends.backend import Subscription
from dispytch.listener.consumer import Consumer
from dispytch.routing import TopicPattern
from dispytch_nats._shutdown import close
from dispytch_nats.core import CoreConsumer
from dispytch_nats.jetstream import JetStreamConsumer
from dispytch_nats.settings import NatsJetStreamSettings

logger = logging.getLogger("dispytch.nats")


class JetStreamReplyConsumer(JetStreamConsumer):
    """Reads the replies subject `topic`; `stop()` deletes its consumer and purges the
    subject's replies from their stream."""

    def __init__(self, settings: NatsJetStreamSettings, topic: str) -> None:
        super().__init__(settings, Subscription(topic, (TopicPattern(topic),)))
        self.topic = topic

    async def stop(self) -> None:
        client, streams = self._client, [feed.stream for feed in self._feeds]
        self._owns_client = False  # closed here, once the consumer is deleted
        try:
            await super().stop()
        finally:
            if client is not None:
                await self._delete(client, streams)
                await close(client, self.settings.timeout)
                self._client = None

    async def _delete(self, client: Client, streams: list[str]) -> None:
        js = client.jetstream(timeout=self.settings.timeout)
        try:
            for stream in streams:
                await js.delete_consumer(stream, self.name)
                await js.purge_stream(stream, subject=self.topic)
        except (NatsError, asyncio.TimeoutError) as exc:
            logger.warning("could not delete the replies consumer of %s: %r", self.topic, exc)


def reply_consumer(settings: NatsJetStreamSettings, topic: str) -> Consumer:
    """The consumer of an emitter's replies to its requests, sent to subject `topic`."""
    subscription = Subscription(topic, (TopicPattern(topic),))
    if settings.mode == "core":
        return CoreConsumer(settings, subscription)
    return JetStreamReplyConsumer(settings, topic)

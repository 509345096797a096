"""The stream one emitter's replies to its requests arrive on (Redis Streams mode), deleted
when the emitter stops."""

from __future__ import annotations

import logging

from redis.exceptions import ResponseError

from dispytch.routing import TopicPattern
from dispytch_redis._reconnect import UNREACHABLE
from dispytch_redis.settings import RedisStreamsSettings
from dispytch_redis.streams import RedisStreamConsumer

logger = logging.getLogger("dispytch.redis")


class RedisReplyConsumer(RedisStreamConsumer):
    """Reads the replies stream `topic` in a group of its own; `stop()` deletes the stream
    (and so its group). A stream left by an emitter that died holds its last replies, as
    many as `maxlen` keeps."""

    async def stop(self) -> None:
        await super().stop()  # does not close the client: it is closed here, at the end
        try:
            await self.redis.delete(*self._literal)
        except (*UNREACHABLE, ResponseError) as exc:
            logger.warning("could not delete the replies stream %s: %r", self._literal, exc)
        finally:
            await self.redis.aclose()


def reply_consumer(settings: RedisStreamsSettings, topic: str) -> RedisReplyConsumer:
    """The consumer of an emitter's replies to its requests, sent to stream `topic`."""
    return RedisReplyConsumer(
        settings.client(read_timeout=settings.timeout + settings.block),
        topic,
        [TopicPattern(topic)],
        start_id="0",
        batch_size=settings.batch_size,
        block=settings.block,
        claim_idle=settings.claim_idle,
        claim_interval=settings.claim_interval,
        discovery_interval=settings.discovery_interval,
    )

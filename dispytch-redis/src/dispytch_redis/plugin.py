"""Registers the Redis backends: `redis`, Streams by default or Pub/Sub with
`mode="pubsub"` in its settings, and `redis-pubsub`, a name for Pub/Sub mode.

The modes promise different things, so the capabilities of `redis` follow its
settings, and a listener's capability check sees the mode it gets.

The factories import the modules that use redis-py when they are called, so loading the
plugin does not import redis-py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dispytch.backends import Backend, Capabilities, Subscription
from dispytch.backends.hookspecs import hookimpl
from dispytch_redis.settings import RedisPubSubSettings, RedisSettings, RedisStreamsSettings

if TYPE_CHECKING:
    from dispytch_redis.pubsub import RedisConsumer, RedisProducer
    from dispytch_redis.replies import RedisReplyConsumer
    from dispytch_redis.streams import RedisStreamConsumer, RedisStreamProducer

STREAMS = Capabilities(
    persistent=True,
    consumer_groups=True,
    redelivery=True,
    ordering=True,
    headers=True,
    wildcards=True,
)
PUBSUB = Capabilities(ordering=True, wildcards=True)


def redis_capabilities(settings: RedisStreamsSettings) -> Capabilities:
    return PUBSUB if settings.mode == "pubsub" else STREAMS


def redis_producer(settings: RedisStreamsSettings) -> RedisStreamProducer | RedisProducer:
    return pubsub_producer(settings) if settings.mode == "pubsub" else stream_producer(settings)


def redis_consumer(
    settings: RedisStreamsSettings, subscription: Subscription
) -> RedisStreamConsumer | RedisConsumer:
    if settings.mode == "pubsub":
        return pubsub_consumer(settings, subscription)
    return stream_consumer(settings, subscription)


def stream_producer(settings: RedisStreamsSettings) -> RedisStreamProducer:
    from dispytch_redis.streams import RedisStreamProducer

    return RedisStreamProducer(settings.client(), maxlen=settings.maxlen, close_client=True)


def stream_consumer(
    settings: RedisStreamsSettings, subscription: Subscription
) -> RedisStreamConsumer:
    from dispytch_redis.streams import RedisStreamConsumer

    return RedisStreamConsumer(
        settings.client(read_timeout=settings.timeout + settings.block),
        subscription.group,
        subscription.patterns,
        consumer_name=settings.consumer_name,
        start_id=settings.start_id,
        batch_size=settings.batch_size,
        block=settings.block,
        claim_idle=settings.claim_idle,
        claim_interval=settings.claim_interval,
        discovery_interval=settings.discovery_interval,
        close_client=True,
    )


def pubsub_producer(settings: RedisSettings) -> RedisProducer:
    from dispytch_redis.pubsub import RedisProducer

    return RedisProducer(settings.client(), close_client=True)


def pubsub_consumer(settings: RedisSettings, subscription: Subscription) -> RedisConsumer:
    from dispytch_redis.pubsub import RedisConsumer

    return RedisConsumer(settings.client().pubsub(), subscription.patterns, close_client=True)


def redis_reply_consumer(settings: RedisStreamsSettings, topic: str) -> RedisReplyConsumer:
    from dispytch_redis.replies import reply_consumer

    return reply_consumer(settings, topic)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="redis",
            settings=RedisStreamsSettings,
            create_producer=redis_producer,
            create_consumer=redis_consumer,
            capabilities=STREAMS,
            capabilities_by_settings=redis_capabilities,
            create_reply_consumer=redis_reply_consumer,
            schemes=("redis", "rediss"),
            install="dispytch-redis",
            description="Redis Streams (or Pub/Sub with mode='pubsub'): consumer groups, acks, "
            "crashed consumers' entries claimed",
        )
    )
    register(
        Backend(
            name="redis-pubsub",
            settings=RedisPubSubSettings,
            create_producer=pubsub_producer,
            create_consumer=pubsub_consumer,
            capabilities=PUBSUB,
            schemes=("redis-pubsub", "rediss-pubsub"),
            install="dispytch-redis",
            description="Redis Pub/Sub as in Dispytch 0.10: fire and forget, no groups",
        )
    )

"""Registers the Redis backends: `redis` (Streams) and `redis-pubsub` (Pub/Sub).

The two modes are two backends because they promise different things, and a
listener's capability check must see which one it gets.
"""

from __future__ import annotations

from collections.abc import Callable

from dispytch.backends import Backend, Capabilities, Subscription
from dispytch.backends.hookspecs import hookimpl
from dispytch_redis.pubsub import RedisConsumer, RedisProducer
from dispytch_redis.settings import RedisPubSubSettings, RedisStreamsSettings
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


def stream_producer(settings: RedisStreamsSettings) -> RedisStreamProducer:
    return RedisStreamProducer(settings.client(), maxlen=settings.maxlen, close_client=True)


def stream_consumer(
    settings: RedisStreamsSettings, subscription: Subscription
) -> RedisStreamConsumer:
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


def pubsub_producer(settings: RedisPubSubSettings) -> RedisProducer:
    return RedisProducer(settings.client(), close_client=True)


def pubsub_consumer(settings: RedisPubSubSettings, subscription: Subscription) -> RedisConsumer:
    return RedisConsumer(settings.client().pubsub(), subscription.patterns, close_client=True)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="redis",
            settings=RedisStreamsSettings,
            create_producer=stream_producer,
            create_consumer=stream_consumer,
            capabilities=STREAMS,
            schemes=("redis", "rediss"),
            install="dispytch-redis",
            description="Redis Streams: consumer groups, acks, crashed consumers' entries claimed",
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

"""Redis backends for Dispytch, on redis-py's asyncio client.

- `redis` (URLs `redis://`, `rediss://`): Redis Streams with consumer groups.
- `redis-pubsub` (URLs `redis-pubsub://`, `rediss-pubsub://`): Pub/Sub, as in Dispytch 0.10.

Its names are imported on first use, so that loading the plugin does not import redis-py.
"""

from typing import TYPE_CHECKING

from dispytch._lazy import lazy_exports

__all__ = [
    "RedisConsumer",
    "RedisEventConfig",
    "RedisProducer",
    "RedisPubSubSettings",
    "RedisSettings",
    "RedisStreamConsumer",
    "RedisStreamProducer",
    "RedisStreamsSettings",
]

if TYPE_CHECKING:
    from dispytch_redis.config import RedisEventConfig
    from dispytch_redis.pubsub import RedisConsumer, RedisProducer
    from dispytch_redis.settings import RedisPubSubSettings, RedisSettings, RedisStreamsSettings
    from dispytch_redis.streams import RedisStreamConsumer, RedisStreamProducer
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "config": ["RedisEventConfig"],
            "pubsub": ["RedisConsumer", "RedisProducer"],
            "settings": ["RedisPubSubSettings", "RedisSettings", "RedisStreamsSettings"],
            "streams": ["RedisStreamConsumer", "RedisStreamProducer"],
        },
    )

"""Redis backends for Dispytch, on redis-py's asyncio client.

- `redis` (URLs `redis://`, `rediss://`): Redis Streams with consumer groups.
- `redis-pubsub` (URLs `redis-pubsub://`, `rediss-pubsub://`): Pub/Sub, as in Dispytch 0.10.
"""

from dispytch_redis.config import RedisEventConfig
from dispytch_redis.pubsub import RedisConsumer, RedisProducer
from dispytch_redis.settings import RedisPubSubSettings, RedisSettings, RedisStreamsSettings
from dispytch_redis.streams import RedisStreamConsumer, RedisStreamProducer

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

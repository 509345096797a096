"""Settings of the two Redis backends, from keywords or from a `redis://` URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from dispytch.backends.settings import BackendSettings, SecretURL

if TYPE_CHECKING:
    from redis.asyncio import Redis

_SCHEMES = {
    "redis": "redis",
    "rediss": "rediss",
    "unix": "unix",
    "redis-pubsub": "redis",
    "rediss-pubsub": "rediss",
}


class RedisSettings(BackendSettings):
    """What both Redis backends share: where Redis is and how long to wait for it."""

    url: SecretURL = SecretURL("redis://localhost:6379/0")
    """Redis URL (`redis://`, `rediss://`, `unix://`). Query parameters redis-py
    understands (`ssl_cert_reqs`, `client_name` ...) are passed through."""
    timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for Redis to connect or answer a command; a send that takes
    longer raises `ProducerTimeout`."""
    max_connections: int = Field(default=50, gt=0)
    """Connections one emitter or listener opens at most; commands beyond wait for one."""

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, url: SecretURL) -> SecretURL:
        parts = urlsplit(url.get_secret_value())
        if parts.scheme not in _SCHEMES:
            raise ValueError(
                f"Redis URLs start with redis://, rediss:// or unix://, got "
                f"{parts.scheme or 'no'} scheme in {url}"
            )
        return SecretURL(urlunsplit(parts._replace(scheme=_SCHEMES[parts.scheme])))

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Settings from a URL: query parameters naming a setting (`?maxlen=10000`) set it;
        all others stay in the URL for redis-py."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        ours = {k: v for k, v in query if k in cls.model_fields and k != "url"}
        rest = urlencode([(k, v) for k, v in query if k not in ours])
        return cls.model_validate({**ours, "url": urlunsplit(parts._replace(query=rest))})

    def client(self, read_timeout: float | None = None) -> Redis:
        """A new redis-py asyncio client; replies may take `read_timeout` seconds
        (default: `timeout`). Failed commands are retried as redis-py's own clients do."""
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import EqualJitterBackoff

        pool = BlockingConnectionPool.from_url(
            self.url.get_secret_value(),
            max_connections=self.max_connections,
            timeout=None,
            socket_connect_timeout=self.timeout,
            socket_timeout=read_timeout or self.timeout,
            retry=Retry(EqualJitterBackoff(cap=1.0, base=0.01), retries=10),
        )
        return Redis.from_pool(pool)


class RedisStreamsSettings(RedisSettings):
    """Settings of the backend `redis`: Redis Streams by default, or Pub/Sub with
    `mode="pubsub"` (URL `redis://host?mode=pubsub`).

    In streams mode a topic is the key of a stream. A listener group is a consumer
    group created on each stream the listener reads; entries are acked with XACK once
    handled, and entries a dead consumer left pending are claimed by live ones. The
    settings below `mode` apply to streams mode only.
    """

    mode: Literal["streams", "pubsub"] = "streams"
    """`streams` (persistent, consumer groups, redelivery) or `pubsub` (fire and forget,
    as in Dispytch 0.10: no groups, nothing kept or redelivered)."""
    maxlen: int | None = Field(default=None, gt=0)
    """Trim each stream to about this many entries when adding one (`MAXLEN ~`)."""
    start_id: str = "0"
    """Where a new consumer group starts reading a stream: `0` for every entry the
    stream holds, `$` for entries added from then on."""
    batch_size: int = Field(default=100, gt=0)
    """Entries read from each stream per XREADGROUP."""
    block: float = Field(default=1.0, gt=0)
    """Seconds one XREADGROUP waits for new entries."""
    claim_idle: float = Field(default=30.0, gt=0)
    """Seconds an entry stays pending, unacked and unrefreshed, before another consumer
    claims it. Live consumers refresh their own entries every `claim_interval`."""
    claim_interval: float = Field(default=5.0, gt=0)
    """Seconds between looks for entries to claim (XAUTOCLAIM)."""
    discovery_interval: float = Field(default=1.0, gt=0)
    """Seconds between scans for new streams matching a wildcard topic."""
    consumer_name: str | None = None
    """This listener's name within its group; a unique one by default."""

    @model_validator(mode="after")
    def _streams_settings_need_streams_mode(self) -> Self:
        streams_only = self.model_fields_set & _STREAMS_ONLY
        if self.mode == "pubsub" and streams_only:
            raise ValueError(
                f"{', '.join(sorted(streams_only))} apply to streams mode only, "
                "and mode is 'pubsub'"
            )
        return self

    @model_validator(mode="after")
    def _claims_outlast_refreshes(self) -> Self:
        if self.claim_interval >= self.claim_idle:
            raise ValueError(
                f"claim_interval ({self.claim_interval}s) must be shorter than claim_idle "
                f"({self.claim_idle}s), or live consumers lose their entries to others"
            )
        return self


class RedisPubSubSettings(RedisSettings):
    """Settings of the backend `redis-pubsub`: events are Pub/Sub messages, as in
    Dispytch 0.10. Every subscriber gets every message; nothing is kept or redelivered."""

    mode: Literal["pubsub"] = "pubsub"
    """Always `pubsub`; Streams are the backend `redis`."""


_STREAMS_ONLY = (
    frozenset(RedisStreamsSettings.model_fields) - frozenset(RedisSettings.model_fields) - {"mode"}
)

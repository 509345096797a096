"""Per-event Redis options, set as an event's `__backend_config__`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RedisEventConfig(BaseModel):
    """Options for one event class or instance; unset fields keep the producer's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maxlen: int | None = Field(default=None, gt=0)
    """Streams: trim the event's stream to about this many entries when adding it.
    Pub/Sub keeps nothing and ignores it."""


def event_config(config: BaseModel | None, producer: type) -> RedisEventConfig | None:
    """`config` checked to be a `RedisEventConfig` (or None)."""
    if config is None or isinstance(config, RedisEventConfig):
        return config
    raise TypeError(
        f"{producer.__name__} takes a RedisEventConfig as __backend_config__, "
        f"got {type(config).__name__}"
    )

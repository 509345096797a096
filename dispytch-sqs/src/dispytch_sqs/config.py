"""`SQSEventConfig`: how one event is published to SNS and SQS."""

from __future__ import annotations

import string
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SQSEventConfig(BaseModel):
    """Per-event options, set as an event's `__backend_config__`.

    With `fifo=True` settings, `key` is the SQS `MessageGroupId`: events sharing it are
    handled in order; events without one share their topic's group.
    `deduplication_id` makes SNS and SQS drop a second event with the same id within
    five minutes (a random id is used otherwise, so only retried sends are dropped).
    Both may be templates such as `"{user_id}"`, formatted from the event's fields.
    Standard queues keep no order and ignore both.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str | None = Field(default=None, min_length=1, max_length=128)
    deduplication_id: str | None = Field(default=None, min_length=1, max_length=128)

    def render(self, fields: dict[str, Any]) -> SQSEventConfig:
        """A copy whose templates are formatted from the event's `fields`."""
        update = {
            name: _format(name, template, fields)
            for name, template in (("key", self.key), ("deduplication_id", self.deduplication_id))
            if template is not None and "{" in template
        }
        return self.model_copy(update=update) if update else self


def event_config(config: BaseModel | None) -> SQSEventConfig | None:
    """`config` checked to be an `SQSEventConfig` (or None)."""
    if config is None or isinstance(config, SQSEventConfig):
        return config
    raise TypeError(
        f"the SQS backend takes an SQSEventConfig as __backend_config__, "
        f"got {type(config).__name__}"
    )


def _format(name: str, template: str, fields: dict[str, Any]) -> str:
    try:
        return string.Formatter().vformat(template, (), fields)
    except (KeyError, AttributeError, IndexError) as exc:
        raise ValueError(
            f"SQSEventConfig.{name} {template!r} refers to {exc}, which the event does not "
            f"have; its fields are {sorted(fields)}"
        ) from None

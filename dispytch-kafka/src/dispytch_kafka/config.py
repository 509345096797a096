"""`KafkaEventConfig`: how one event is published to Kafka."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class KafkaEventConfig(BaseModel):
    """Per-event Kafka options, set as an event's `__backend_config__`.

    `partition_key` picks the partition (events sharing a key stay in order); as a
    string it may be a template such as `"{user_id}"`, formatted from the event's
    fields. `partition` pins the partition instead, `timestamp_ms` sets the record
    timestamp, and `headers` are added to the record's headers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    partition_key: str | bytes | int | None = None
    partition: int | None = None
    timestamp_ms: int | None = None
    headers: Mapping[str, str | bytes] | None = None

    @field_validator("partition")
    @classmethod
    def _non_negative(cls, partition: int | None) -> int | None:
        if partition is not None and partition < 0:
            raise ValueError(f"a partition number cannot be negative, got {partition}")
        return partition

    def render(self, fields: dict[str, Any]) -> KafkaEventConfig:
        """A copy whose `partition_key` template is formatted from the event's `fields`."""
        if not isinstance(self.partition_key, str) or "{" not in self.partition_key:
            return self
        try:
            key = string.Formatter().vformat(self.partition_key, (), fields)
        except (KeyError, AttributeError, IndexError) as exc:
            raise ValueError(
                f"KafkaEventConfig.partition_key {self.partition_key!r} refers to {exc}, "
                f"which the event does not have; its fields are {sorted(fields)}"
            ) from None
        return self.model_copy(update={"partition_key": key})

    def key_bytes(self) -> bytes | None:
        """The record key as sent: strings in UTF-8, integers in decimal."""
        key = self.partition_key
        if key is None or isinstance(key, bytes):
            return key
        return str(key).encode()

    def header_pairs(self, extra: Mapping[str, str] | None = None) -> list[tuple[str, bytes]]:
        """The record headers: these `headers`, then `extra` (which wins on a clash)."""
        merged = {**(self.headers or {}), **(extra or {})}
        return [(k, v if isinstance(v, bytes) else v.encode()) for k, v in merged.items()]

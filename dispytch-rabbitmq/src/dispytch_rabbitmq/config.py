"""Per-event RabbitMQ options, set as an event's `__backend_config__`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aio_pika import DeliveryMode
from pydantic import BaseModel, ConfigDict, model_validator

AMQP_PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)
"""The AMQP message properties besides headers, as aio-pika names them: those a
`RabbitMQEventConfig` may set, and those a consumed message's metadata holds."""


class RabbitMQEventConfig(BaseModel):
    """AMQP message properties and headers for an event, and where to publish it.

    Unset fields keep the defaults: persistent delivery and the producer's exchange.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exchange: str | None = None
    """Publish to this exchange instead of the producer's own."""
    delivery_mode: DeliveryMode | int | None = None
    priority: int | None = None
    expiration: int | float | datetime | timedelta | None = None
    headers: dict[str, Any] | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    message_id: str | None = None
    timestamp: int | float | datetime | timedelta | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_mandatory(cls, data: Any) -> Any:
        if isinstance(data, dict) and "mandatory" in data:
            raise ValueError(
                "RabbitMQEventConfig has no 'mandatory' field any more: events no queue is "
                "bound for are never dropped silently. Catch UnroutableMessage, or set the "
                "backend setting unroutable='keep' to keep them in an alternate-exchange queue"
            )
        return data

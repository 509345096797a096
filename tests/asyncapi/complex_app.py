"""A service with nested models, enums, optional fields, unions and parameterised topics,
on Kafka and RabbitMQ with credentials in their URLs; its AsyncAPI document is tested."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from dispytch import (
    App,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    HandlerGroup,
    TopicSegment,
)
from dispytch.kafka import KafkaEventConfig

KAFKA_URL = "kafka://billing:kafka-s3cret-pw@kafka-1:9092,kafka-2:9092?client_id=billing"
AMQP_URL = "amqp://shop:amqp-s3cret-pw@rabbit.internal:5672/shop?token=query-s3cret"


class Currency(str, Enum):
    EUR = "EUR"
    USD = "USD"


class Region(str, Enum):
    EU = "eu"
    US = "us"


class Money(BaseModel):
    amount: float
    currency: Currency


class Address(BaseModel):
    street: str
    city: str
    postcode: str | None = None


class Card(BaseModel):
    kind: Literal["card"] = "card"
    last4: str


class Invoice(BaseModel):
    kind: Literal["invoice"] = "invoice"
    due_days: int = 30


class Line(BaseModel):
    sku: str
    quantity: int = Field(gt=0)
    price: Money


class OrderPlaced(EventBase):
    """A customer placed an order."""

    __topic__ = "shop.{region}.orders.{customer_id}"
    __event_type__ = "order_placed"
    __backend_config__ = KafkaEventConfig(partition_key="{customer_id}")

    region: str
    customer_id: int
    lines: list[Line]
    shipping: Address
    billing: Address | None = None
    payment: Annotated[Card | Invoice, Field(discriminator="kind")]
    note: str | int | None = None


class OrderShipped(EventBase):
    __topic__ = "shop.{region}.shipments"
    __event_type__ = "order_shipped"

    region: str
    order_id: int
    carrier: Literal["dhl", "ups"]


class Shipment(BaseModel):
    order_id: int
    carrier: str


kafka = EventListener.from_url(KAFKA_URL, group="billing")


@kafka.handler(topic="shop.{region}.orders.{customer_id}", event="order_placed", retries=2)
async def bill(event: Event[OrderPlaced], region: Annotated[str, TopicSegment()]) -> None:
    """Bill the customer for an order."""


@kafka.handler(topic="shop.*.orders.*", event="*", dead_letter_topic="dead.{topic}")
async def audit(event: Event[dict[str, object]]) -> None:
    """Keep every order event for the auditors."""


shipping = HandlerGroup(default_topic="shop.{region}.shipments")


@shipping.handler(event="order_shipped")
async def track(event: Event[Shipment], region: Annotated[Region, TopicSegment()]) -> None:
    """Start tracking a parcel."""


rabbit = EventListener.from_url(AMQP_URL, group="tracking")
rabbit.add_handler_group(shipping)

emitter = EventEmitter.from_url(KAFKA_URL)
amqp_emitter = EventEmitter.from_url(AMQP_URL)


app = App([kafka, rabbit], [emitter, amqp_emitter], emits=[OrderPlaced, OrderShipped])

"""The event most RabbitMQ tests send, and the body their handlers read."""

from __future__ import annotations

from pydantic import BaseModel

from dispytch import EventBase


class Ping(EventBase):
    __topic__ = "{route}"
    __event_type__ = "test.ping"

    route: str
    seq: int


class Body(BaseModel):
    seq: int

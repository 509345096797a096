"""What a backend can promise, declared once and checked before a listener consumes."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Capabilities:
    """Delivery features a backend declares. Everything defaults to "not offered"."""

    persistent: bool = False
    """A message not acked survives the consumer and is delivered again after it restarts."""
    consumer_groups: bool = False
    """Listeners of one group compete for messages; different groups each get every message."""
    redelivery: bool = False
    """`nack` hands a message back and it is delivered again."""
    ordering: bool = False
    """Messages sharing a key are delivered in the order they were sent."""
    headers: bool = False
    """String headers travel with each message."""
    wildcards: bool = False
    """Subscriptions may use `{param}` and `*` segments."""
    native_dead_letter: bool = False
    """The broker itself can route rejected messages to a dead-letter destination."""
    max_payload_bytes: int | None = None
    """The largest encoded event the broker carries, in bytes; None when it declares none.
    A limit, not a feature: `offered()` leaves it out."""
    max_in_flight_per_key: int | None = None
    """How many messages sharing a key the consumer hands out before the first of them is
    settled (an SQS FIFO group's one at a time, say); None when it sets no bound. A batch of
    one key never holds more. A limit, not a feature: `offered()` leaves it out."""

    def offered(self) -> list[str]:
        """Names of the capabilities this backend offers."""
        return [f.name for f in fields(self) if getattr(self, f.name) is True]

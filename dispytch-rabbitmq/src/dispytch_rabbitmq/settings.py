"""Settings of the RabbitMQ backend, from keywords or from an `amqp://` / `amqps://` URL."""

from __future__ import annotations

import ssl
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ConfigDict, Field, field_validator, model_validator
from typing_extensions import Self

from dispytch.backends.settings import BackendSettings, SecretURL

ExchangeType = Literal["topic", "direct", "fanout"]


class RabbitMQSettings(BackendSettings):
    """How Dispytch connects to RabbitMQ and which topology it uses.

    Events are published to one exchange with the topic as routing key. Each
    listener group consumes one durable queue, named from `queue`, bound to the
    exchange with its handlers' topic patterns.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    url: SecretURL = SecretURL("amqp://guest:guest@localhost:5672/")
    """Broker URL. Query parameters aio-pika understands (`cafile`, `certfile`, `keyfile`,
    `no_verify_ssl`, `name` ...) are passed through."""
    exchange: str = "dispytch"
    """The exchange events are published to and queues are bound to."""
    exchange_type: ExchangeType = "topic"
    durable: bool = True
    """Declare the exchange and queues durable (they survive a broker restart)."""
    queue: str = "{exchange}.{group}"
    """Name of a group's queue; `{group}` and `{exchange}` are filled in."""
    quorum: bool = False
    """Declare group queues as quorum queues (replicated; they count deliveries)."""
    prefetch: int = Field(default=100, ge=1)
    """Unacknowledged messages the broker hands to one consumer at a time."""
    heartbeat: int = Field(default=60, ge=0)
    """AMQP heartbeat in seconds; 0 turns heartbeats off."""
    ssl_context: ssl.SSLContext | None = None
    """TLS context for `amqps://` URLs; by default the system's trusted CAs are used."""
    declare: bool = True
    """Declare the exchange, queues and bindings; when False they must already exist."""
    dead_letter_queue: str | None = "{exchange}.dlq"
    """Queue that keeps the dead letters Dispytch publishes (routing keys `<topic>.dlq`),
    so that none is lost as unroutable; None declares none."""
    dead_letter_exchange: str | None = None
    """When set, group queues are declared with this dead-letter exchange and a
    `<queue>.dlq` queue behind it; a listener with `native_dead_letter=True` then lets
    RabbitMQ dead-letter failed messages instead of publishing them itself."""
    mandatory: bool = True
    """Report a published message that no queue is bound for as an error."""
    publish_timeout: float = Field(default=10.0, gt=0)
    """Seconds an emit may take until the broker confirms, waiting out a reconnect."""
    reconnect_interval: float = Field(default=1.0, gt=0)
    """Seconds between attempts to reconnect after the broker went away."""
    topic_delimiter: str = Field(default=".", min_length=1)
    """The delimiter of topic segments; it becomes `.` in routing keys."""

    @field_validator("url")
    @classmethod
    def _amqp_scheme(cls, url: SecretURL) -> SecretURL:
        parts = urlsplit(url.get_secret_value())
        if parts.scheme == "rabbitmq":
            return SecretURL(urlunsplit(parts._replace(scheme="amqp")))
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(
                f"RabbitMQ URLs start with amqp:// or amqps://, got {parts.scheme or 'no'} scheme "
                f"in {url}"
            )
        return url

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.quorum and not self.durable:
            raise ValueError("quorum queues are always durable: set durable=True or quorum=False")
        if "{group}" not in self.queue:
            raise ValueError(
                f"queue={self.queue!r} must contain '{{group}}' so that groups get their own queue"
            )
        try:
            self.queue_name("group")
            self.dead_letter_queue_name()
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"queue={self.queue!r}, dead_letter_queue={self.dead_letter_queue!r}: only "
                f"'{{group}}' (queue) and '{{exchange}}' may be filled in, not {exc}"
            ) from None
        return self

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Settings from a URL: query parameters naming a setting (`?exchange=orders&quorum=true`)
        set it; all others stay in the URL for aio-pika."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        ours = {k: v for k, v in query if k in cls.model_fields and k != "url"}
        rest = urlencode([(k, v) for k, v in query if k not in ours])
        return cls.model_validate({**ours, "url": urlunsplit(parts._replace(query=rest))})

    def queue_name(self, group: str) -> str:
        """The queue that listeners of `group` consume."""
        return self.queue.format(group=group, exchange=self.exchange)

    def dead_letter_queue_name(self) -> str | None:
        """The queue keeping the dead letters Dispytch publishes, if any."""
        if self.dead_letter_queue is None:
            return None
        return self.dead_letter_queue.format(exchange=self.exchange)

    def routing_key(self, topic: str) -> str:
        """The routing key a topic is published with."""
        if self.topic_delimiter == ".":
            return topic
        return topic.replace(self.topic_delimiter, ".")

    def topic(self, routing_key: str) -> str:
        """The topic a routing key was published for."""
        if self.topic_delimiter == ".":
            return routing_key
        return routing_key.replace(".", self.topic_delimiter)

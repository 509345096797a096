"""Settings of the RabbitMQ backend, from keywords or from an `amqp://` / `amqps://` URL."""

from __future__ import annotations

import json
import ssl
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ConfigDict, Field, field_validator, model_validator
from typing_extensions import Self

from dispytch.backends.backend import Subscription
from dispytch.backends.settings import BackendSettings, SecretURL
from dispytch.routing import TopicPattern, TopicPatternError

ExchangeType = Literal["topic", "direct", "fanout"]
UnroutablePolicy = Literal["raise", "keep"]


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
    """`topic` (wildcard topics), `direct` (literal topics only) or `fanout` (every queue
    gets every event)."""
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
    unroutable: UnroutablePolicy = "raise"
    """What becomes of an event no queue is bound for: `raise` fails its emit with
    `UnroutableMessage`; `keep` declares the exchange with an alternate exchange whose
    queue (`unroutable_queue`) keeps it. Set it alike on every service of the exchange."""
    unroutable_queue: str = "{exchange}.unroutable"
    """Name of the alternate exchange (fanout) and of its queue, for `unroutable="keep"`;
    `{exchange}` is filled in."""
    required_groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Consumer groups whose queues are declared by the emitting side too, each bound for
    its topic patterns (`{"billing": ["orders.*"]}`), so that events are kept before any
    listener of the group ever ran. A JSON object in URLs and environment variables."""
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

    @model_validator(mode="before")
    @classmethod
    def _no_mandatory(cls, data: Any) -> Any:
        if isinstance(data, dict) and "mandatory" in data:
            raise ValueError(
                "the 'mandatory' setting is gone: events no queue is bound for are never "
                "dropped silently. Leave unroutable='raise' (the default) to get "
                "UnroutableMessage, or set unroutable='keep' to keep them in an "
                "alternate-exchange queue"
            )
        return data

    @field_validator("required_groups", mode="before")
    @classmethod
    def _groups_from_json(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(
                f"required_groups given as text must be a JSON object of group names to "
                f'topic patterns, such as {{"billing": ["orders.*"]}}; got {value!r}'
            ) from None

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
            self.unroutable_queue_name()
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"queue={self.queue!r}, dead_letter_queue={self.dead_letter_queue!r}, "
                f"unroutable_queue={self.unroutable_queue!r}: only '{{group}}' (queue) and "
                f"'{{exchange}}' may be filled in, not {exc}"
            ) from None
        if self.unroutable == "keep":
            self._check_unroutable_queue()
        self.required_subscriptions()  # raises ValueError naming what is wrong
        return self

    def _check_unroutable_queue(self) -> None:
        if not self.declare:
            raise ValueError(
                "unroutable='keep' declares an alternate exchange, but declare=False declares "
                "nothing: give the exchange an alternate exchange yourself (a policy) and "
                "leave unroutable='raise'"
            )
        if self.unroutable_queue_name() in (self.exchange, self.dead_letter_queue_name()):
            raise ValueError(
                f"unroutable_queue={self.unroutable_queue!r} names the exchange or the "
                "dead-letter queue: give the unroutable events a name of their own"
            )

    def required_subscriptions(self) -> list[Subscription]:
        """The `required_groups` as the subscriptions their listeners would make."""
        if self.required_groups and not self.declare:
            raise ValueError(
                "required_groups makes the emitting side declare queues, but declare=False "
                "declares nothing: create those queues yourself, or set declare=True"
            )
        return [self._required(group, topics) for group, topics in self.required_groups.items()]

    def _required(self, group: str, topics: tuple[str, ...]) -> Subscription:
        where = f"required_groups[{group!r}]"
        if not group:
            raise ValueError("required_groups names a group with an empty name")
        name = self.queue_name(group)
        if name in (self.dead_letter_queue_name(), self.unroutable_queue_name()):
            raise ValueError(
                f"{where}: its queue {name!r} is the queue of dead letters or unroutable "
                "events: rename the group"
            )
        if not topics and self.exchange_type != "fanout":
            raise ValueError(
                f"{where} lists no topic pattern: its queue would be bound to nothing and keep "
                "nothing; list the topics the group's listeners handle"
            )
        patterns = []
        for topic in topics:
            try:
                pattern = TopicPattern(topic, self.topic_delimiter)
            except TopicPatternError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if self.exchange_type == "direct" and not pattern.is_literal:
                raise ValueError(
                    f"{where}: topic {topic!r} has wildcards, but a direct exchange routes "
                    "exact keys only: use exchange_type='topic'"
                )
            patterns.append(pattern)
        return Subscription(group, tuple(dict.fromkeys(patterns)))

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

    def unroutable_queue_name(self) -> str:
        """The alternate exchange, and its queue, that keep unroutable events."""
        return self.unroutable_queue.format(exchange=self.exchange)

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

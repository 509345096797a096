"""Kafka, AMQP and NATS bindings, where they say something a reader of the document can use:
the consumer group and client id, the partition key, the exchange and a group's queue."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

KAFKA = "0.5.0"
AMQP = "0.3.0"
NATS = "0.1.0"


def protocol_of(backend_name: str | None) -> str | None:
    """`kafka`, `amqp` or `nats` for the backends these bindings describe, else None."""
    protocols = {"kafka": "kafka", "rabbitmq": "amqp", "nats": "nats", "nats-core": "nats"}
    return protocols.get(backend_name or "")


def _enum(value: str) -> dict[str, Any]:
    return {"type": "string", "enum": [value]}


def kafka_operation(settings: Any, group: str | None) -> dict[str, Any]:
    binding: dict[str, Any] = {}
    if group:
        binding["groupId"] = _enum(group)
    client_id = getattr(settings, "client_id", None)
    if client_id:
        binding["clientId"] = _enum(client_id)
    return {**binding, "bindingVersion": KAFKA}


def kafka_message(event_class: type) -> dict[str, Any] | None:
    """The record key of an event whose `__backend_config__` sets a `partition_key`."""
    key = getattr(getattr(event_class, "__backend_config__", None), "partition_key", None)
    if key is None:
        return None
    description = f"formatted from {key!r}" if isinstance(key, str) and "{" in key else None
    schema: dict[str, Any] = {"type": "string"}
    if description:
        schema["description"] = f"the partition key, {description}"
    else:
        schema["enum"] = [key if isinstance(key, str | int) else repr(key)]
    return {"key": schema, "bindingVersion": KAFKA}


def amqp_exchange(settings: Any) -> dict[str, Any]:
    """A topic channel: messages are published to the exchange with the topic as routing key."""
    exchange: dict[str, Any] = {
        "name": getattr(settings, "exchange", "dispytch"),
        "type": getattr(settings, "exchange_type", "topic"),
        "durable": bool(getattr(settings, "durable", True)),
        "autoDelete": False,
        "vhost": _vhost(settings),
    }
    return {"is": "routingKey", "exchange": exchange, "bindingVersion": AMQP}


def amqp_queue_name(settings: Any, group: str) -> str:
    template = str(getattr(settings, "queue", "{exchange}.{group}"))
    return template.format(exchange=getattr(settings, "exchange", "dispytch"), group=group)


def amqp_queue(settings: Any, group: str) -> dict[str, Any]:
    """A group's queue, bound to the exchange with its handlers' topic patterns."""
    queue = {
        "name": amqp_queue_name(settings, group),
        "durable": bool(getattr(settings, "durable", True)),
        "exclusive": False,
        "autoDelete": False,
        "vhost": _vhost(settings),
    }
    return {"is": "queue", "queue": queue, "bindingVersion": AMQP}


def amqp_send(settings: Any) -> dict[str, Any]:
    return {
        "deliveryMode": 2,
        "mandatory": getattr(settings, "unroutable", "raise") == "raise",
        "bindingVersion": AMQP,
    }


def amqp_receive() -> dict[str, Any]:
    return {"ack": True, "bindingVersion": AMQP}


def nats_receive(group: str | None) -> dict[str, Any] | None:
    """Listeners of one group share the messages, as a NATS queue group does."""
    return {"queue": group[:255], "bindingVersion": NATS} if group else None


def _vhost(settings: Any) -> str:
    url = getattr(settings, "url", None)
    text = url.get_secret_value() if isinstance(url, SecretStr) else str(url or "")
    path = urlsplit(text).path
    return unquote(path[1:]) if len(path) > 1 else "/"

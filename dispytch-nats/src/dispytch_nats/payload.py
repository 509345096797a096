"""What a message to the NATS servers may carry: no backend config, a subject to publish to,
and how large it may be."""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.client import Client
from pydantic import BaseModel

from dispytch.emitter.producer import OutgoingMessage
from dispytch_nats.subjects import check_topic

_HEADER_LINE = len("NATS/1.0\r\n\r\n")


class PayloadTooLarge(ValueError):
    """An event is larger than the servers' `max_payload`."""


def refuse_config(config: BaseModel | None) -> None:
    """Raise `TypeError` for a `__backend_config__`: the NATS backend takes none."""
    if config is not None:
        raise TypeError(
            f"the NATS backend takes no __backend_config__, got {type(config).__name__}"
        )


def check_size(
    client: Client, limit: int, topic: str, payload: bytes, headers: Mapping[str, str]
) -> None:
    """Raise `PayloadTooLarge` when `payload` and `headers` together exceed `limit` (the
    `max_payload` setting) or the `max_payload` the server announced. The server would
    close the connection over such a message; nats-py checks the payload alone."""
    size = len(payload)
    if headers:
        size += _HEADER_LINE + sum(len(k) + len(v) + 4 for k, v in headers.items())
    if size > limit:
        raise PayloadTooLarge(
            f"a message of {size} bytes to {topic!r} is larger than max_payload, {limit} "
            "bytes: send less, or raise the max_payload setting (up to the server's)"
        )
    if size > client.max_payload:
        raise PayloadTooLarge(
            f"a message of {size} bytes to {topic!r} is larger than the {client.max_payload} "
            "bytes the NATS server takes (its max_payload): send less, or raise max_payload "
            "in the server's configuration"
        )


def check_outgoing(client: Client, max_payload: int, message: OutgoingMessage) -> None:
    """Raise for a message the backend refuses: a config, a topic that is no subject to
    publish to, a message larger than the servers take."""
    refuse_config(message.config)
    check_topic(message.topic)
    check_size(client, max_payload, message.topic, message.payload, message.headers)

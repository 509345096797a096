"""How large a message the NATS servers take."""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.client import Client

_HEADER_LINE = len("NATS/1.0\r\n\r\n")


class PayloadTooLarge(ValueError):
    """An event is larger than the servers' `max_payload`."""


def check_size(client: Client, topic: str, payload: bytes, headers: Mapping[str, str]) -> None:
    """Raise `PayloadTooLarge` when `payload` and `headers` together exceed the
    `max_payload` the server announced (nats-server's default is 1 MiB). The server
    would close the connection over such a message; nats-py checks the payload alone."""
    size = len(payload)
    if headers:
        size += _HEADER_LINE + sum(len(k) + len(v) + 4 for k, v in headers.items())
    limit = client.max_payload
    if size > limit:
        raise PayloadTooLarge(
            f"a message of {size} bytes to {topic!r} is larger than the {limit} bytes the NATS "
            "server takes (its max_payload): send less, or raise max_payload in the server's "
            "configuration"
        )

"""Opening a robust aio-pika connection from settings, with a clear error when it fails."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aio_pika import connect_robust
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from dispytch.backends.settings import redact_url
from dispytch_rabbitmq.settings import RabbitMQSettings


class RabbitMQConnectionError(ConnectionError):
    """The broker could not be reached or refused the connection."""


async def connect(settings: RabbitMQSettings, role: str) -> AbstractRobustConnection:
    """A connection that reconnects by itself after the broker comes back.

    `role` names the connection in the broker's management UI.
    """
    url = _connection_url(settings, role)
    try:
        return await connect_robust(
            url,
            ssl_context=settings.ssl_context,
            reconnect_interval=settings.reconnect_interval,
        )
    except CONNECTION_EXCEPTIONS as exc:
        raise RabbitMQConnectionError(
            f"cannot connect to RabbitMQ at {redact_url(url)} ({type(exc).__name__}: "
            f"{exc}); check that the broker runs and the URL and credentials are right"
        ) from exc


def _connection_url(settings: RabbitMQSettings, role: str) -> str:
    """The URL with the heartbeat set and, unless it names one, a connection name."""
    parts = urlsplit(settings.url.get_secret_value())
    query = {
        "name": f"dispytch {role}",
        **dict(parse_qsl(parts.query)),
        "heartbeat": str(settings.heartbeat),
    }
    return urlunsplit(parts._replace(query=urlencode(query)))

"""Opening a robust aio-pika connection from settings, with a clear error when it fails."""

from __future__ import annotations

from aio_pika import connect_robust
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

from dispytch.backends.settings import redact_url
from dispytch_rabbitmq.settings import RabbitMQSettings


class RabbitMQConnectionError(ConnectionError):
    """The broker could not be reached or refused the connection."""


async def connect(settings: RabbitMQSettings, role: str) -> AbstractRobustConnection:
    """A connection that reconnects by itself after the broker comes back.

    `role` names the connection in the broker's management UI.
    """
    url = URL(settings.url.get_secret_value()).update_query(heartbeat=settings.heartbeat)
    try:
        return await connect_robust(
            url,
            ssl_context=settings.ssl_context,
            reconnect_interval=settings.reconnect_interval,
            client_properties={"connection_name": f"dispytch {role}"},
        )
    except CONNECTION_EXCEPTIONS as exc:
        raise RabbitMQConnectionError(
            f"cannot connect to RabbitMQ at {redact_url(str(url))} ({type(exc).__name__}: "
            f"{exc}); check that the broker runs and the URL and credentials are right"
        ) from exc

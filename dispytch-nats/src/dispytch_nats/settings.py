"""Settings of the NATS backends, from keywords or from a `nats://` URL."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from dispytch.backends.settings import BackendSettings, SecretURL

if TYPE_CHECKING:
    from nats.aio.client import Client

logger = logging.getLogger("dispytch.nats")

_SCHEMES = {"nats": "nats", "tls": "tls", "ws": "ws", "wss": "wss", "nats-core": "nats"}


class NatsURL(SecretURL):
    """NATS server URLs, comma-separated, whose credentials never show: a password,
    and a token (`nats://<token>@host`), are shown as `***`."""

    def _display(self) -> str:
        return ",".join(_redact(server) for server in self.servers())

    def servers(self) -> list[str]:
        """The server URLs, one per server."""
        return [s.strip() for s in self.get_secret_value().split(",") if s.strip()]


class NatsSettings(BackendSettings):
    """What both NATS modes share: where the servers are and how long to wait for them.

    Credentials go in the URL (`nats://user:password@host:4222`, `nats://token@host:4222`)
    or in a `.creds` file; neither ever shows in reprs, logs or error messages.
    """

    url: NatsURL = NatsURL("nats://localhost:4222")
    """Server URL (`nats://`, `tls://`, `ws://`, `wss://`); several servers of one
    cluster separated by commas."""
    creds_file: str | None = None
    """Path of a `.creds` file (JWT and NKey seed) to authenticate with."""
    name: str = "dispytch"
    """The connection name servers show in their monitoring."""
    timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait to connect, and for a server's answer; a send that takes longer
    raises `ProducerTimeout`."""
    max_payload: int = Field(default=1_048_576, gt=0)
    """The largest message, headers included, the backend sends (bytes): nats-server's
    default `max_payload`, 1 MiB. Declared as the backend's limit; a larger event is
    refused before it is sent, as is one over what the server itself announces."""
    mode: Literal["jetstream", "core"] = "jetstream"
    """`jetstream` (streams and durable consumers: persistent, acked, redelivered) or
    `core` (core NATS: at most once, nothing kept)."""

    @field_validator("url", mode="before")
    @classmethod
    def _nats_url(cls, value: Any) -> NatsURL:
        raw = value.get_secret_value() if isinstance(value, SecretURL) else str(value)
        servers = []
        for server in raw.split(","):
            parts = urlsplit(server.strip())
            if parts.scheme not in _SCHEMES:
                raise ValueError(
                    f"NATS URLs start with nats://, tls://, ws:// or wss://, got "
                    f"{parts.scheme or 'no'} scheme in {_redact(server.strip())}"
                )
            servers.append(urlunsplit(parts._replace(scheme=_SCHEMES[parts.scheme])))
        return NatsURL(",".join(servers))

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Settings from a URL: query parameters naming a setting (`?mode=core`) set it,
        the others stay in the URL."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        ours = {k: v for k, v in query if k in cls.model_fields and k != "url"}
        rest = urlencode([(k, v) for k, v in query if k not in ours])
        values: dict[str, Any] = {**ours, "url": urlunsplit(parts._replace(query=rest))}
        if parts.scheme == "nats-core":
            values.setdefault("mode", "core")
        return cls.model_validate(values)

    async def connect(self) -> Client:
        """A new nats-py connection that reconnects forever once it was established."""
        from nats.aio.client import Client

        client = Client()

        async def disconnected() -> None:
            if not client.is_closed:  # nats-py calls this on an orderly close too
                logger.warning("disconnected from NATS; reconnecting")

        await client.connect(
            servers=self.url.servers(),
            name=self.name,
            connect_timeout=self.timeout,  # type: ignore[arg-type]  # used with asyncio.wait_for: a float works
            max_reconnect_attempts=-1,
            user_credentials=self.creds_file,
            error_cb=_log_error,
            disconnected_cb=disconnected,
            reconnected_cb=_log_reconnected,
        )
        return client


class NatsJetStreamSettings(NatsSettings):
    """Settings of the backend `nats`: JetStream by default, or core NATS with
    `mode="core"` (URL `nats://host:4222?mode=core`).

    In JetStream mode a topic is a subject stored in a stream; the stream of the
    topics starting with `users.` is the one that already captures them, or else one
    created on first use, named by `stream_name`. A listener group is a durable pull
    consumer on each stream its topics are in. The settings below `mode` apply to
    JetStream mode only.
    """

    stream_name: str = "{root}"
    """Name of the stream created for topics whose first token is `{root}` (it
    captures `<root>` and `<root>.>`), when no stream captures them already."""
    storage: Literal["file", "memory"] = "file"
    """Where streams created by Dispytch keep their messages."""
    replicas: int = Field(default=1, ge=1, le=5)
    """Replicas of streams created by Dispytch (in a JetStream cluster)."""
    max_age: float | None = Field(default=None, gt=0)
    """Seconds streams created by Dispytch keep a message; None keeps it until the
    stream's other limits discard it."""
    publish_window: int = Field(default=1000, ge=1)
    """JetStream publishes an emitter has sent and not yet seen acknowledged at most;
    further emits wait for room, and their `timeout` starts once they are sent."""
    deliver_policy: Literal["all", "new"] = "all"
    """Where a new group starts: `all` with every message the stream holds, `new` with
    messages published from then on."""
    ack_wait: float = Field(default=30.0, gt=0)
    """Seconds JetStream waits for an ack before it delivers a message again. A live
    listener tells JetStream it is still working on its messages every third of it."""
    max_deliver: int | None = Field(default=None, ge=1)
    """Deliveries of a message after which JetStream gives up on it (None: no limit).
    To dead-letter instead, give the listener `max_deliveries`."""
    max_ack_pending: int = Field(default=1000, ge=1)
    """Messages a group may have delivered and not acked, across its listeners."""
    batch_size: int = Field(default=100, ge=1)
    """Messages asked for per pull request."""
    block: float = Field(default=1.0, gt=0)
    """Seconds one pull request waits for messages."""

    @model_validator(mode="after")
    def _jetstream_settings_need_jetstream_mode(self) -> Self:
        given = self.model_fields_set & _JETSTREAM_ONLY
        if self.mode == "core" and given:
            raise ValueError(
                f"{', '.join(sorted(given))} apply to JetStream mode only, and mode is 'core'"
            )
        return self

    @field_validator("stream_name")
    @classmethod
    def _names_root(cls, value: str) -> str:
        try:
            value.format(root="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"stream_name {value!r} may only use the placeholder {{root}}: {exc}"
            ) from None
        return value


class NatsCoreSettings(NatsSettings):
    """Settings of the backend `nats-core`: core NATS publish and subscribe, at most
    once. A listener group is a NATS queue group."""

    mode: Literal["core"] = "core"
    """Always `core`; JetStream is the backend `nats`."""


_JETSTREAM_ONLY = frozenset(NatsJetStreamSettings.model_fields) - frozenset(
    NatsSettings.model_fields
)


def _redact(server: str) -> str:
    parts = urlsplit(server)
    if parts.username is None and parts.password is None:
        return server
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{parts.username}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


async def _log_error(error: Exception) -> None:
    logger.warning("NATS connection error: %r", error)


async def _log_reconnected() -> None:
    logger.warning("reconnected to NATS")

"""`SQSSettings`: where SQS and SNS are, how to sign in, and how queues behave."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, SecretStr, model_validator
from typing_extensions import Self

from dispytch.backends.settings import BackendSettings

if TYPE_CHECKING:
    from aiobotocore.session import AioSession

SNS_MESSAGE_LIMIT = 262_144
"""Bytes SNS takes in one message (body and attributes); SQS itself takes up to 1 MiB."""
ATTRIBUTE_ROOM = 1024
"""Bytes of a message kept for its attributes (topic, headers, encoding)."""


class SQSSettings(BackendSettings):
    """Settings of the `sqs` backend (aiobotocore underneath).

    Credentials come from the usual AWS sources (environment variables, the shared
    config and credentials files, `profile`, container or instance roles) unless
    `access_key_id` and `secret_access_key` are given. They are secrets: reprs, logs
    and `dispytch backends` never show them.

    Built from keywords, or from a URL: `sqs://` (everything from the environment),
    `sqs://eu-west-1` (a region), `sqs://127.0.0.1:4566` (an endpoint such as moto or
    LocalStack, over http), `sqs://KEY:SECRET@...` (credentials, URL-quoted), with
    query parameters naming fields: `sqs://eu-west-1?fifo=true&max_receive_count=5`.
    """

    region: str | None = None
    """AWS region; by default the one of the environment or the profile."""
    endpoint_url: str | None = None
    """Endpoint of both SQS and SNS, for emulators (moto, LocalStack) or VPC endpoints."""
    profile: str | None = None
    """A profile of the shared AWS config files."""
    access_key_id: SecretStr | None = None
    """The AWS access key id; with `secret_access_key`, used instead of the environment's."""
    secret_access_key: SecretStr | None = None
    """The AWS secret access key."""
    session_token: SecretStr | None = None
    """A session token, for temporary credentials."""

    name_prefix: str = Field(default="", max_length=40, pattern=r"^[A-Za-z0-9_-]*$")
    """Put before every SNS topic and SQS queue name, to keep applications apart."""
    fifo: bool = False
    """FIFO topics and queues: events sharing a key (`SQSEventConfig(key=...)`, by
    default the topic) are handled in order, each exactly once per group."""

    visibility_timeout: int = Field(default=30, ge=1, le=43_200)
    """Seconds a received message stays hidden from other consumers of the group; it is
    extended while a handler runs, and a crashed consumer's messages come back after it."""
    wait_time: int = Field(default=10, ge=0, le=20)
    """Seconds one ReceiveMessage waits for messages (long polling)."""
    batch_size: int = Field(default=10, ge=1, le=10)
    """Messages one ReceiveMessage takes at most."""
    receivers: int = Field(default=2, ge=1)
    """ReceiveMessage calls a consumer keeps going at once."""
    max_in_flight: int = Field(default=100, ge=1)
    """Messages received and not yet settled before a consumer stops receiving."""
    max_receive_count: int | None = Field(default=None, ge=1, le=1000)
    """When set, each group's queue gets a dead-letter queue (`<queue>-dlq`) and a redrive
    policy: SQS moves a message there after this many receives, and listeners with
    `native_dead_letter=True` put failed messages there too."""
    max_message_size: int = Field(default=SNS_MESSAGE_LIMIT, ge=1024, le=SNS_MESSAGE_LIMIT)
    """Bytes of one message, body and attributes; SNS refuses more than 256 KiB."""

    timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for AWS to connect or answer; a send that takes longer raises
    `ProducerTimeout`."""
    max_pool_connections: int = Field(default=50, ge=1)
    """HTTP connections one emitter or listener opens at most, per service."""

    @model_validator(mode="before")
    @classmethod
    def _expand_url(cls, data: Any) -> Any:
        """A `url` given among the settings stands for the fields it spells out."""
        if isinstance(data, dict) and "url" in data:
            data = dict(data)
            return {**_url_fields(str(data.pop("url"))), **data}
        return data

    @model_validator(mode="after")
    def _keys_come_in_pairs(self) -> Self:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        return self

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Settings from `sqs://[KEY:SECRET@][region | host:port][?field=value...]`."""
        return cls.model_validate({"url": url})

    @property
    def max_payload_bytes(self) -> int:
        """The largest message body sent: `max_message_size` less `ATTRIBUTE_ROOM`."""
        return self.max_message_size - ATTRIBUTE_ROOM

    def session(self) -> AioSession:
        """A new aiobotocore session, on `profile` when given."""
        from aiobotocore.session import AioSession

        return AioSession(profile=self.profile)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of `AioSession.create_client` for SQS and SNS.

        Reads may take `wait_time` seconds longer than `timeout`, for long polls.
        """
        from aiobotocore.config import AioConfig

        options: dict[str, Any] = {
            "region_name": self.region,
            "endpoint_url": self.endpoint_url,
            "config": AioConfig(
                connect_timeout=self.timeout,
                read_timeout=self.timeout + self.wait_time,
                max_pool_connections=self.max_pool_connections,
                retries={"mode": "standard"},
            ),
        }
        if self.access_key_id is not None and self.secret_access_key is not None:
            options["aws_access_key_id"] = self.access_key_id.get_secret_value()
            options["aws_secret_access_key"] = self.secret_access_key.get_secret_value()
            if self.session_token is not None:
                options["aws_session_token"] = self.session_token.get_secret_value()
        return options


def _url_fields(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme != "sqs":
        raise ValueError(f"an SQS URL starts with 'sqs://', got {parts.scheme + '://'!r}")
    fields: dict[str, Any] = {}
    if parts.username is not None:
        fields["access_key_id"] = unquote(parts.username)
        fields["secret_access_key"] = unquote(parts.password or "")
    if parts.hostname:
        if parts.port is not None:
            fields["endpoint_url"] = f"http://{parts.hostname}:{parts.port}"
        else:
            fields["region"] = parts.hostname
    return {**fields, **dict(parse_qsl(parts.query))}

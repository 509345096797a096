"""`KafkaSettings`: how the Kafka backend connects, produces and consumes."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from typing_extensions import Self

from dispytch.backends.settings import BackendSettings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BackendSettings):
    """Settings of the Kafka backend (aiokafka underneath).

    Built from keywords, or from a URL such as
    `kafka://user:password@host1:9092,host2:9092?client_id=billing&acks=1`, where
    credentials select SASL (PLAIN unless `sasl_mechanism` says otherwise) and query
    parameters name fields. Durations are in milliseconds unless the name says
    otherwise.
    """

    bootstrap_servers: tuple[str, ...] = ("localhost:9092",)
    """Brokers to bootstrap from: a list, or one comma-separated string."""
    client_id: str = "dispytch"
    """The client id the brokers see."""

    # producing
    acks: Literal[0, 1, "all"] = "all"
    """Replicas that must have a record before an emit returns: `0`, `1` or `all`."""
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    """Compression of record batches; None sends them uncompressed."""
    linger_ms: int = Field(default=0, ge=0)
    """How long a batch waits for more records before it is sent: more latency per emit,
    fuller batches under load."""
    max_batch_size: int = Field(default=16384, gt=0)
    """Bytes per batch and partition; concurrent emits fill batches up to this."""
    request_timeout_ms: int = Field(default=40000, gt=0)
    """How long a request, and an emit's confirmation, may take."""
    metadata_max_age_ms: int = Field(default=300000, gt=0)
    """Metadata refresh interval; also how soon a wildcard handler sees a new topic."""

    # consuming
    session_timeout_ms: int = Field(default=10000, gt=0)
    """A listener silent this long leaves its group."""
    heartbeat_interval_ms: int | None = Field(default=None, gt=0)
    """Heartbeats to the group coordinator; defaults to a third of `session_timeout_ms`."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a group without committed offsets starts reading a partition."""
    fetch_max_wait_ms: int = Field(default=100, ge=0)
    """How long the broker holds a fetch that has less than `fetch_min_bytes` for it: the
    latency of a quiet topic against the number of fetch requests (aiokafka: 500)."""
    fetch_min_bytes: int = Field(default=1, gt=0)
    """Bytes a fetch waits for (up to `fetch_max_wait_ms`) before the broker answers."""
    max_poll_records: int | None = Field(default=None, gt=0)
    """Records taken from the fetched data at a time (all of it when None)."""
    max_in_flight_per_partition: int = Field(default=1000, gt=0)
    """Messages of one partition handed out and not yet acked before it is paused."""
    commit_interval: float = Field(default=0.1, gt=0)
    """Seconds at most between an ack and the commit of its offset while events keep
    coming; offsets are committed at once when every message handed out is acked."""

    # security, passed through to aiokafka
    security_protocol: SecurityProtocol | None = None
    """Defaults to SASL_SSL or SASL_PLAINTEXT with SASL, SSL with SSL files, else PLAINTEXT;
    `SSL` alone trusts the system's CAs."""
    ssl_cafile: str | None = None
    """A CA file to verify the brokers with; it selects SSL (or SASL_SSL)."""
    ssl_certfile: str | None = None
    """A client certificate; it selects SSL (or SASL_SSL)."""
    ssl_keyfile: str | None = None
    """The client certificate's key."""
    ssl_password: SecretStr | None = None
    """The password of the client certificate's key."""
    sasl_mechanism: SaslMechanism | None = None
    """`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; set by credentials in the URL."""
    sasl_username: str | None = None
    """The SASL user."""
    sasl_password: SecretStr | None = None
    """The SASL password; it never shows in reprs, logs or error messages."""

    @model_validator(mode="before")
    @classmethod
    def _expand_url(cls, data: Any) -> Any:
        """A `url` given among the settings stands for the fields it spells out."""
        if isinstance(data, dict) and "url" in data:
            data = dict(data)
            return {**_url_fields(str(data.pop("url"))), **data}
        return data

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [server.strip() for server in value.split(",") if server.strip()]
        if not value:
            raise ValueError("give at least one bootstrap server, such as 'localhost:9092'")
        return value

    @field_validator("acks", mode="before")
    @classmethod
    def _parse_acks(cls, value: Any) -> Any:
        return {"0": 0, "1": 1, "-1": "all", -1: "all"}.get(value, value)

    @model_validator(mode="after")
    def _check_security(self) -> Self:
        if self.sasl_mechanism and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"sasl_mechanism={self.sasl_mechanism!r} needs sasl_username and sasl_password"
            )
        if self.sasl_mechanism is None and (self.sasl_username or self.sasl_password):
            raise ValueError(
                "sasl_username/sasl_password are set but sasl_mechanism is not: "
                "set it to 'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'"
            )
        if self.sasl_mechanism and self.protocol in ("PLAINTEXT", "SSL"):
            raise ValueError(
                f"sasl_mechanism is set but security_protocol={self.security_protocol!r}: "
                "use 'SASL_PLAINTEXT' or 'SASL_SSL'"
            )
        return self

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Settings from `kafka://[user:password@]host:port[,host:port...][?field=value...]`."""
        return cls.model_validate({"url": url})

    @property
    def protocol(self) -> SecurityProtocol:
        """The security protocol in effect."""
        if self.security_protocol is not None:
            return self.security_protocol
        tls = bool(self.ssl_cafile or self.ssl_certfile)
        if self.sasl_mechanism:
            return "SASL_SSL" if tls else "SASL_PLAINTEXT"
        return "SSL" if tls else "PLAINTEXT"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by aiokafka's producer and consumer."""
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "metadata_max_age_ms": self.metadata_max_age_ms,
            "security_protocol": self.protocol,
        }
        if self.protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context  # type: ignore[import-untyped]

            password = self.ssl_password.get_secret_value() if self.ssl_password else None
            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile,
                certfile=self.ssl_certfile,
                keyfile=self.ssl_keyfile,
                password=password,
            )
        if self.sasl_mechanism:
            assert self.sasl_password is not None  # checked by the validator
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options

    def producer_options(self) -> dict[str, Any]:
        """Keyword arguments for `aiokafka.AIOKafkaProducer`."""
        return {
            **self.client_options(),
            "acks": self.acks,
            "compression_type": self.compression_type,
            "linger_ms": self.linger_ms,
            "max_batch_size": self.max_batch_size,
        }

    def consumer_options(self, group: str) -> dict[str, Any]:
        """Keyword arguments for `aiokafka.AIOKafkaConsumer` in consumer group `group`."""
        return {
            **self.client_options(),
            "group_id": group,
            "enable_auto_commit": False,
            "auto_offset_reset": self.auto_offset_reset,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms or self.session_timeout_ms // 3,
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
            "fetch_min_bytes": self.fetch_min_bytes,
            "max_poll_records": self.max_poll_records,
        }


def _url_fields(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise ValueError(f"a Kafka URL starts with 'kafka://', got {parts.scheme + '://'!r}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    fields: dict[str, Any] = {"bootstrap_servers": hosts} if hosts else {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        fields.update(
            sasl_mechanism="PLAIN", sasl_username=unquote(user), sasl_password=unquote(password)
        )
    return {**fields, **dict(parse_qsl(parts.query))}

"""Choosing a backend by string: by name with settings, by URL, from a config mapping;
settings validated with the field named; passwords kept out of sight."""

from __future__ import annotations

import logging

import pytest

from dispytch import EventEmitter, EventListener
from dispytch.backends import (
    BackendError,
    BackendSettings,
    BackendSettingsError,
    SecretURL,
    redact_url,
    select_backend,
)
from dispytch.backends.memory import MemoryConsumer, MemoryProducer


def test_by_name_with_settings() -> None:
    emitter = EventEmitter.from_backend("memory", broker="orders")
    assert isinstance(emitter.producer, MemoryProducer)
    assert emitter.backend is not None
    assert emitter.backend.name == "memory"


def test_by_url_scheme() -> None:
    backend, settings = select_backend("memory://orders")
    assert backend.name == "memory"
    assert settings.model_dump() == {"broker": "orders"}


def test_unknown_setting_is_rejected_naming_the_field() -> None:
    with pytest.raises(BackendSettingsError, match="brokr") as error:
        EventEmitter.from_backend("memory", brokr="orders")
    assert "Extra inputs are not permitted" in str(error.value)
    assert "Fields it takes: broker" in str(error.value)


def test_ill_typed_setting_is_rejected_naming_the_field() -> None:
    with pytest.raises(BackendSettingsError, match="broker"):
        EventEmitter.from_backend("memory", broker=["not", "a", "string"])


def test_unknown_backend_name_from_a_url() -> None:
    with pytest.raises(BackendError, match="no backend named 'kafak'"):
        EventEmitter.from_url("kafak://localhost:9092")


def test_from_environment_variables() -> None:
    env = {"DISPYTCH_BACKEND": "memory", "DISPYTCH_BACKEND_BROKER": "env", "DISPYTCH_GROUP": "g1"}
    listener = EventListener.from_config(env)
    assert listener.group == "g1"
    assert listener.backend is not None
    assert listener.backend.name == "memory"
    assert EventEmitter.from_config({"DISPYTCH_BACKEND": "memory://env"}).backend is not None


def test_from_a_nested_settings_mapping() -> None:
    config = {"backend": "memory", "settings": {"broker": "nested"}, "group": "g2"}
    assert EventListener.from_config(config).group == "g2"


def test_config_without_a_backend_says_what_to_set() -> None:
    with pytest.raises(BackendError, match="DISPYTCH_BACKEND"):
        EventEmitter.from_config({})
    with pytest.raises(ValueError, match="DISPYTCH_GROUP"):
        EventListener.from_config({"DISPYTCH_BACKEND": "memory"})


async def test_listener_subscribes_to_its_handlers_topics() -> None:
    listener = EventListener.from_backend("memory", group="subs", broker="subs")

    @listener.handler(topic="orders.{id}", event="created")
    async def created() -> None: ...

    @listener.handler(topic="orders.{id}", event="deleted")
    async def deleted() -> None: ...

    @listener.handler(topic="users.*", event="*")
    async def anything() -> None: ...

    assert [p.text for p in listener.subscription.patterns] == ["orders.{id}", "users.*"]
    assert listener.subscription.group == "subs"
    consumer = listener.backend.create_consumer(  # type: ignore[union-attr]
        listener.backend_settings, listener.subscription
    )
    assert isinstance(consumer, MemoryConsumer)
    assert [p.text for p in consumer.patterns] == ["orders.{id}", "users.*"]


class DatabaseSettings(BackendSettings):
    url: SecretURL


def test_passwords_never_show_in_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    settings = DatabaseSettings.from_url("redis://app:s3cret@db.internal:6379/0")
    assert settings.url.get_secret_value() == "redis://app:s3cret@db.internal:6379/0"
    for shown in (repr(settings), str(settings), str(settings.url), f"{settings.url}"):
        assert "s3cret" not in shown
        assert "app:***@db.internal" in shown
    logging.getLogger("test").warning("settings: %s %r", settings, settings)
    assert "s3cret" not in caplog.text
    assert redact_url("amqp://guest:pw@host/") == "amqp://guest:***@host/"
    assert redact_url("kafka://host:9092") == "kafka://host:9092"


def test_settings_errors_hide_the_input() -> None:
    with pytest.raises(BackendSettingsError) as error:
        select_backend("memory://x", {"broker": "ok", "password": "s3cret"})
    assert "s3cret" not in str(error.value)

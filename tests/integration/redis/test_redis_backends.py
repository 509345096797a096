"""How the Redis backends are registered, selected and configured (no server needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from dispytch import EventListener
from dispytch.backends import BackendSettingsError, CapabilityError, registry, select_backend
from dispytch_redis import RedisPubSubSettings, RedisStreamConsumer, RedisStreamsSettings
from dispytch_redis.plugin import PUBSUB, STREAMS

pytestmark = pytest.mark.redis


def test_one_plugin_registers_both_modes() -> None:
    streams, pubsub = registry().get("redis"), registry().get("redis-pubsub")
    assert (streams.distribution, pubsub.distribution) == ("dispytch-redis", "dispytch-redis")
    assert (streams.schemes, pubsub.schemes) == (
        ("redis", "rediss"),
        ("redis-pubsub", "rediss-pubsub"),
    )
    assert (streams.capabilities, pubsub.capabilities) == (STREAMS, PUBSUB)


def test_pubsub_declares_what_it_cannot_do() -> None:
    assert PUBSUB.offered() == ["ordering", "wildcards"]
    assert set(STREAMS.offered()) == {
        "persistent",
        "consumer_groups",
        "redelivery",
        "ordering",
        "headers",
        "wildcards",
    }


@pytest.mark.parametrize(
    ("url", "backend", "redis_url"),
    [
        ("redis://h:6379/2", "redis", "redis://h:6379/2"),
        ("rediss://h:6380/0", "redis", "rediss://h:6380/0"),
        ("redis-pubsub://h:6379/0", "redis-pubsub", "redis://h:6379/0"),
        ("rediss-pubsub://h:6380/0", "redis-pubsub", "rediss://h:6380/0"),
    ],
)
def test_url_scheme_picks_the_mode(url: str, backend: str, redis_url: str) -> None:
    chosen, settings = select_backend(url)
    assert chosen.name == backend
    assert settings.url.get_secret_value() == redis_url  # type: ignore[attr-defined]


def test_url_query_sets_our_fields_and_keeps_redis_py_options() -> None:
    settings = RedisStreamsSettings.from_url(
        "redis://h/0?maxlen=1000&claim_idle=60&client_name=billing&start_id=%24"
    )
    assert (settings.maxlen, settings.claim_idle, settings.start_id) == (1000, 60.0, "$")
    assert settings.url.get_secret_value() == "redis://h/0?client_name=billing"


def test_password_never_shows() -> None:
    settings = RedisStreamsSettings(url="redis://user:s3cret@h:6379/0")
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.url)


def test_the_mode_is_chosen_in_settings_and_sets_the_capabilities() -> None:
    for spec, settings in [("redis", {"mode": "pubsub"}), ("redis://h/0?mode=pubsub", {})]:
        backend, chosen = select_backend(spec, settings)
        assert (backend.name, chosen.mode) == ("redis", "pubsub")  # type: ignore[attr-defined]
        assert backend.capabilities_for(chosen) == PUBSUB
    backend, chosen = select_backend("redis://h/0")
    assert (chosen.mode, backend.capabilities_for(chosen)) == ("streams", STREAMS)  # type: ignore[attr-defined]


def test_streams_settings_are_refused_in_pubsub_mode() -> None:
    with pytest.raises(BackendSettingsError, match="maxlen apply to streams mode only"):
        select_backend("redis", {"mode": "pubsub", "maxlen": 10})
    with pytest.raises(BackendSettingsError, match="mode"):
        select_backend("redis-pubsub", {"mode": "streams"})


async def test_a_pubsub_listener_that_needs_redelivery_is_told_at_start() -> None:
    listener = EventListener.from_url(
        "redis://127.0.0.1:1/0?mode=pubsub",
        group="g",
        listener_options={"requires": {"persistent", "redelivery"}},
    )

    @listener.handler(topic="orders", event="*")
    async def handle() -> None: ...

    with pytest.raises(CapabilityError, match="persistent, redelivery") as error:
        await listener.listen()
    assert "it offers: ordering, wildcards" in str(error.value)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="start with redis://, rediss:// or unix://"):
        RedisPubSubSettings(url="http://h/0")


def test_claims_must_come_less_often_than_entries_go_idle() -> None:
    with pytest.raises(ValidationError, match=r"claim_interval .* must be shorter than claim_idle"):
        RedisStreamsSettings(claim_idle=1.0, claim_interval=1.0)


def test_streams_consumer_needs_a_topic() -> None:
    with pytest.raises(ValueError, match="at least one topic"):
        RedisStreamConsumer(Redis(), "group", [])

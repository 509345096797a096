"""The Kafka backend's settings, event config and offset bookkeeping (no broker needed)."""

from __future__ import annotations

import asyncio
import re
import ssl

import pytest
from pydantic import ValidationError

from dispytch.backends import BackendSettingsError, Subscription, select_backend
from dispytch.routing import TopicPattern
from dispytch_kafka import KafkaEventConfig, KafkaSettings
from dispytch_kafka.consumer import KafkaConsumer, subscription_regex
from dispytch_kafka.partition import Partition

pytestmark = pytest.mark.kafka


def test_a_url_spells_out_servers_credentials_and_fields() -> None:
    settings = KafkaSettings.from_url(
        "kafka://billing:s%3Acret@k1:9092,k2:9093?client_id=billing&acks=1&linger_ms=5"
    )
    assert settings.bootstrap_servers == ("k1:9092", "k2:9093")
    assert (settings.client_id, settings.acks, settings.linger_ms) == ("billing", 1, 5)
    assert (settings.sasl_mechanism, settings.sasl_username) == ("PLAIN", "billing")
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == "s:cret"
    assert "s:cret" not in repr(settings)
    assert settings.protocol == "SASL_PLAINTEXT"


def test_the_backend_is_chosen_by_url_and_keywords_override_it() -> None:
    backend, settings = select_backend("kafka://k1:9092?client_id=a", {"client_id": "b"})
    assert backend.name == "kafka"
    assert isinstance(settings, KafkaSettings)
    assert (settings.bootstrap_servers, settings.client_id) == (("k1:9092",), "b")
    _, from_keyword = select_backend("kafka", {"url": "kafka://k3:9092", "acks": "all"})
    assert isinstance(from_keyword, KafkaSettings)
    assert from_keyword.bootstrap_servers == ("k3:9092",)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"bootstrap_server": "k:9092"}, "bootstrap_server"),
        ({"acks": "some"}, "acks"),
        ({"bootstrap_servers": ""}, "at least one bootstrap server"),
        ({"sasl_mechanism": "SCRAM-SHA-256"}, "needs sasl_username and sasl_password"),
        ({"sasl_username": "u", "sasl_password": "p"}, "sasl_mechanism is not"),
        (
            {
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": "p",
                "security_protocol": "SSL",
            },
            "use 'SASL_PLAINTEXT' or 'SASL_SSL'",
        ),
        ({"url": "redis://k:9092"}, "starts with 'kafka://'"),
    ],
)
def test_bad_settings_are_named(values: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        KafkaSettings.model_validate(values)


def test_a_bad_url_setting_names_the_field_and_hides_the_password() -> None:
    with pytest.raises(BackendSettingsError) as caught:
        select_backend("kafka://u:hunter2@k:9092?linger_ms=soon")
    assert "linger_ms" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_security_protocol_follows_the_other_settings() -> None:
    scram = {"sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u", "sasl_password": "p"}
    assert KafkaSettings().protocol == "PLAINTEXT"
    assert KafkaSettings(**scram).protocol == "SASL_PLAINTEXT"
    assert KafkaSettings(**scram, security_protocol="SASL_SSL").protocol == "SASL_SSL"
    tls = KafkaSettings(security_protocol="SSL").producer_options()
    assert isinstance(tls["ssl_context"], ssl.SSLContext)
    assert tls["security_protocol"] == "SSL"
    options = KafkaSettings(**scram).consumer_options("billing")
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "p"
    assert options["group_id"] == "billing"
    assert options["enable_auto_commit"] is False


def test_event_config_renders_its_key_template_and_encodes_fields() -> None:
    config = KafkaEventConfig(partition_key="{region}-{user_id}", headers={"a": "1", "b": b"\x00"})
    rendered = config.render({"region": "eu", "user_id": 7})
    assert rendered.key_bytes() == b"eu-7"
    assert config.partition_key == "{region}-{user_id}", "the class's config is left alone"
    assert rendered.header_pairs({"a": "2"}) == [("a", b"2"), ("b", b"\x00")]
    assert KafkaEventConfig(partition_key=42).key_bytes() == b"42"
    assert KafkaEventConfig(partition_key=b"\x01").render({}).key_bytes() == b"\x01"
    with pytest.raises(ValidationError, match="cannot be negative"):
        KafkaEventConfig(partition=-1)


def test_commits_only_move_past_contiguous_done_offsets() -> None:
    partition = Partition("orders", 0)
    for offset in (10, 11, 12, 14):  # 13 was compacted away
        partition.track(offset)
    partition.done(12)
    partition.done(11)
    assert partition.committable is None, "10 is still in flight"
    partition.done(10)
    assert (partition.committable, partition.in_flight) == (13, 1)
    partition.done(14)
    assert (partition.committable, partition.in_flight) == (15, 0)


def test_the_subscription_regex_matches_whole_topics_only() -> None:
    regex = re.compile(
        subscription_regex([TopicPattern("orders.{region}.created"), TopicPattern("audit")])
    )
    assert regex.match("orders.eu.created")
    assert regex.match("audit")
    assert not regex.match("orders.eu.created.dlq")
    assert not regex.match("orders.eu.west.created")
    assert not regex.match("audit.dlq")


async def test_stopping_the_committer_as_the_stream_goes_idle_does_not_hang() -> None:
    """A cancellation that comes in the turn the stream goes idle ends the committer
    (asyncio.wait_for before 3.12 swallows it, and stopping the consumer hung)."""
    consumer = KafkaConsumer.from_settings(
        KafkaSettings(), Subscription("group", (TopicPattern("orders"),))
    )
    committer = asyncio.create_task(consumer._commit_periodically())
    await asyncio.sleep(0)
    consumer._acked.set()  # a message acked: the committer waits for idle or the interval
    for _ in range(3):
        await asyncio.sleep(0)
    consumer._drained.set()  # the stream goes idle, and in the same turn the consumer stops
    committer.cancel()

    done, _ = await asyncio.wait({committer}, timeout=2.0)
    assert done, "the committer ignored its cancellation"
    assert committer.cancelled()

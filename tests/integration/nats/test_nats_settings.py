"""The NATS backends' settings and subject mapping (no server needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispytch.backends.selection import select_backend
from dispytch.routing import TopicPattern
from dispytch_nats import NatsJetStreamSettings, SubjectError, consumer_name
from dispytch_nats.subjects import Subjects, check_topic, disjoint, subject


def test_password_and_token_never_show() -> None:
    settings = NatsJetStreamSettings(url="nats://alice:s3cret@a:4222,nats://t0ken@b:4222")
    shown = f"{settings!r} {settings} {settings.model_dump()} {settings.url}"
    assert "s3cret" not in shown
    assert "t0ken" not in shown
    assert "nats://alice:***@a:4222,nats://***@b:4222" in shown
    assert settings.url.servers() == ["nats://alice:s3cret@a:4222", "nats://t0ken@b:4222"]


def test_url_query_sets_settings_and_scheme_picks_the_backend() -> None:
    backend, settings = select_backend("nats://localhost:4222?ack_wait=5&batch_size=10", {})
    assert backend.name == "nats"
    assert isinstance(settings, NatsJetStreamSettings)
    assert (settings.ack_wait, settings.batch_size) == (5.0, 10)
    assert settings.url.get_secret_value() == "nats://localhost:4222"

    backend, settings = select_backend("nats-core://localhost:4222", {})
    assert (backend.name, settings.mode) == ("nats-core", "core")
    assert settings.url.get_secret_value() == "nats://localhost:4222"
    assert not backend.capabilities_for(settings).persistent


def test_core_mode_has_the_weaker_capabilities() -> None:
    backend, settings = select_backend("nats", {"mode": "core"})
    caps = backend.capabilities_for(settings)
    assert caps.offered() == ["consumer_groups", "ordering", "headers", "wildcards"]
    backend, settings = select_backend("nats", {})
    assert backend.capabilities_for(settings).persistent


def test_jetstream_settings_refused_in_core_mode() -> None:
    with pytest.raises(ValidationError, match="ack_wait apply to JetStream mode only"):
        NatsJetStreamSettings(mode="core", ack_wait=5)


def test_bad_scheme_named_without_credentials() -> None:
    with pytest.raises(ValidationError) as caught:
        NatsJetStreamSettings(url="http://bob:pw@host:4222")
    assert "http scheme" in str(caught.value)
    assert "pw" not in str(caught.value)


def test_stream_name_takes_only_the_root_placeholder() -> None:
    assert NatsJetStreamSettings(stream_name="EVENTS_{root}").stream_name == "EVENTS_{root}"
    with pytest.raises(ValidationError, match="may only use the placeholder"):
        NatsJetStreamSettings(stream_name="{topic}")


def test_topic_patterns_become_subjects() -> None:
    assert subject(TopicPattern("users.{user_id}")) == "users.*"
    assert subject(TopicPattern("users.*.created")) == "users.*.created"
    assert subject(TopicPattern("orders/eu", delimiter="/")) == "orders/eu"
    with pytest.raises(SubjectError, match=r"must use '\.' as delimiter"):
        subject(TopicPattern("orders/{region}", delimiter="/"))
    with pytest.raises(SubjectError, match="not a NATS subject"):
        check_topic("users..created")
    with pytest.raises(SubjectError, match="not a NATS subject"):
        check_topic("users.>")


def test_overlapping_subjects_are_merged() -> None:
    assert disjoint(["users.*", "users.created", "orders.eu"]) == {"users.*", "orders.eu"}
    assert disjoint(["users.*.x", "users.a.*"]) == {"users.*.*"}
    assert disjoint(["users.*", "users.a.b"]) == {"users.*", "users.a.b"}
    assert disjoint(["a.>", "a.b.*"]) == {"a.>"}
    assert disjoint(["a.b", "c.d.e"]) == {"a.b", "c.d.e"}


def test_a_merged_subject_lets_through_only_what_a_pattern_matches() -> None:
    subjects = Subjects.of([TopicPattern("users.{id}.x"), TopicPattern("users.a.{kind}")])
    assert subjects.filters == ("users.*.*",)
    assert not subjects.exact
    assert subjects.wanted("users.7.x")
    assert subjects.wanted("users.a.created")
    assert not subjects.wanted("users.7.y")
    assert Subjects.of([TopicPattern("users.*"), TopicPattern("users.a")]).exact


def test_consumer_names_are_groups_made_valid() -> None:
    assert consumer_name("billing") == "billing"
    assert consumer_name("billing-eu_2") == "billing-eu_2"
    dotted = consumer_name("billing.eu")
    assert dotted.startswith("billing_eu-")
    assert dotted != consumer_name("billing_eu")
    assert dotted != consumer_name("billing*eu")

"""RabbitMQ settings, URLs and binding keys: what needs no node, checked without one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispytch.backends.backend import Subscription
from dispytch.backends.registry import registry
from dispytch.backends.selection import select_backend, settings_from_config
from dispytch.routing import TopicPattern
from dispytch_rabbitmq import (
    DeadLetteringRabbitMQConsumer,
    RabbitMQConsumer,
    RabbitMQEventConfig,
    RabbitMQProducer,
    RabbitMQSettings,
    TopologyError,
)
from dispytch_rabbitmq.topology import binding_keys

pytestmark = pytest.mark.rabbitmq


def test_registered_by_name_and_amqp_schemes() -> None:
    backend = registry().get("rabbitmq")
    assert backend.schemes == ("amqp", "amqps")
    assert backend.settings is RabbitMQSettings
    assert backend.distribution == "dispytch-rabbitmq"
    caps = backend.capabilities
    assert caps.offered() == [
        "persistent",
        "consumer_groups",
        "redelivery",
        "ordering",
        "headers",
        "wildcards",
        "native_dead_letter",
    ]


def test_url_query_sets_settings_and_keeps_the_rest_for_aio_pika() -> None:
    settings = RabbitMQSettings.from_url(
        "amqps://app:s3cret@mq.example:5671/prod?exchange=orders&quorum=true&prefetch=5&name=svc"
    )
    assert (settings.exchange, settings.quorum, settings.prefetch) == ("orders", True, 5)
    assert settings.url.get_secret_value() == "amqps://app:s3cret@mq.example:5671/prod?name=svc"
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.url)


def test_rabbitmq_scheme_means_amqp() -> None:
    settings = RabbitMQSettings(url="rabbitmq://guest:guest@localhost/")  # type: ignore[arg-type]
    assert settings.url.get_secret_value() == "amqp://guest:guest@localhost/"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"url": "redis://localhost"}, "amqp:// or amqps://"),
        ({"quorum": True, "durable": False}, "quorum queues are always durable"),
        ({"queue": "static-name"}, "must contain '{group}'"),
        ({"queue": "{group}.{env}"}, "only '{group}' .queue. and '{exchange}' may be filled in"),
        ({"prefetch": 0}, "prefetch"),
        ({"exchnage": "typo"}, "exchnage"),
        ({"mandatory": False}, "never dropped silently.*unroutable='keep'"),
        ({"unroutable": "drop"}, "'raise' or 'keep'"),
        ({"unroutable": "keep", "declare": False}, "declare=False declares nothing"),
        ({"unroutable": "keep", "unroutable_queue": "{exchange}"}, "names the exchange"),
        ({"unroutable_queue": "{group}.x"}, "may be filled in"),
        ({"required_groups": "billing"}, "JSON object of group names"),
        ({"required_groups": {"billing": []}}, r"\['billing'\] lists no topic pattern"),
        ({"required_groups": {"billing": ["orders..x"]}}, r"\['billing'\]: .*empty segment"),
        ({"required_groups": {"": ["orders"]}}, "a group with an empty name"),
        ({"required_groups": {"dlq": ["orders"]}}, "'dispytch.dlq' is the queue of dead letters"),
        (
            {"required_groups": {"billing": ["orders.*"]}, "exchange_type": "direct"},
            "routes exact keys only",
        ),
        ({"required_groups": {"billing": ["orders"]}, "declare": False}, "declares nothing"),
    ],
)
def test_invalid_settings_say_what_is_wrong(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        RabbitMQSettings.model_validate(values)


def test_required_groups_become_the_subscriptions_of_their_listeners() -> None:
    settings = RabbitMQSettings(
        topic_delimiter="/", required_groups={"billing": ["orders/{id}", "orders/{id}", "refunds"]}
    )
    assert settings.required_subscriptions() == [
        Subscription("billing", (TopicPattern("orders/{id}", "/"), TopicPattern("refunds", "/")))
    ]


def test_required_groups_from_a_url_or_the_environment_are_json() -> None:
    from_url = RabbitMQSettings.from_url(
        "amqp://mq/?required_groups=%7B%22billing%22%3A%5B%22orders.*%22%5D%7D"
    )
    spec, values, _ = settings_from_config(
        {
            "DISPYTCH_BACKEND": "rabbitmq",
            "DISPYTCH_BACKEND_REQUIRED_GROUPS": '{"billing": ["orders.*"]}',
        }
    )
    _, from_env = select_backend(spec, values)
    assert from_url.required_groups == {"billing": ("orders.*",)}
    assert from_env == RabbitMQSettings(required_groups={"billing": ("orders.*",)})


def test_an_event_config_cannot_drop_unroutable_events() -> None:
    with pytest.raises(ValidationError, match="never dropped silently"):
        RabbitMQEventConfig(mandatory=False)  # type: ignore[call-arg]


def test_names_and_routing_keys() -> None:
    settings = RabbitMQSettings(exchange="shop", topic_delimiter="/")
    assert settings.queue_name("billing") == "shop.billing"
    assert settings.dead_letter_queue_name() == "shop.dlq"
    assert settings.routing_key("users/42/created") == "users.42.created"
    assert settings.topic("users.42.created") == "users/42/created"


def test_binding_keys_turn_params_and_wildcards_into_amqp_wildcards() -> None:
    patterns = [
        TopicPattern("users.{user_id}.*"),
        TopicPattern("users.{id}.*"),
        TopicPattern("a.b"),
    ]
    assert binding_keys(patterns, RabbitMQSettings()) == ["users.*.*", "a.b"]
    slashed = [TopicPattern("users/{user_id}", delimiter="/")]
    assert binding_keys(slashed, RabbitMQSettings(topic_delimiter="/")) == ["users.*"]
    assert binding_keys(patterns, RabbitMQSettings(exchange_type="fanout")) == [""]


def test_direct_exchange_refuses_wildcard_topics() -> None:
    with pytest.raises(TopologyError, match="use exchange_type='topic'"):
        binding_keys([TopicPattern("users.{id}")], RabbitMQSettings(exchange_type="direct"))


def test_construction_needs_objects_or_settings() -> None:
    with pytest.raises(TypeError, match="either a list of aio-pika exchanges or settings"):
        RabbitMQProducer()
    with pytest.raises(TypeError, match="either aio-pika queues or settings"):
        RabbitMQConsumer()


def test_a_dead_letter_exchange_makes_the_consumer_dead_letter_natively() -> None:
    backend = registry().get("rabbitmq")
    subscription = _subscription("orders.*")
    plain = backend.create_consumer(RabbitMQSettings(), subscription)
    native = backend.create_consumer(RabbitMQSettings(dead_letter_exchange="dlx"), subscription)
    assert not isinstance(plain, DeadLetteringRabbitMQConsumer)
    assert isinstance(native, DeadLetteringRabbitMQConsumer)


def test_listener_and_settings_must_agree_on_the_delimiter() -> None:
    backend = registry().get("rabbitmq")
    with pytest.raises(ValueError, match="set both to the same value"):
        backend.create_consumer(RabbitMQSettings(), _subscription("users/{id}", delimiter="/"))


def _subscription(*topics: str, delimiter: str = ".") -> Subscription:
    return Subscription("g", tuple(TopicPattern(t, delimiter=delimiter) for t in topics))


def test_the_0_10_import_path_still_works() -> None:
    from dispytch.rabbitmq import RabbitMQConsumer as Consumer010
    from dispytch.rabbitmq import RabbitMQEventConfig as Config010
    from dispytch.rabbitmq import RabbitMQProducer as Producer010

    assert (Consumer010, Producer010) == (RabbitMQConsumer, RabbitMQProducer)
    assert Config010(exchange="audit", priority=1).exchange == "audit"

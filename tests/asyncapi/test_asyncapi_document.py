"""The AsyncAPI document of the demo and of a complex app is valid AsyncAPI 3.0.0 and says
what the code does: channels, parameters, messages, operations, servers, bindings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import complex_app
import jsonschema
import pytest
import yaml
from official_schema import problems
from pydantic import BaseModel

from dispytch import Batch, Event, EventBase, EventListener
from dispytch.asyncapi import asyncapi_document, to_yaml
from dispytch.demo import build_app


class Entry(BaseModel):
    text: str


class Audited(EventBase):
    __topic__ = "audit/{tenant}/log"
    __event_type__ = "audit/entry"
    tenant: str
    entry: Entry


@pytest.fixture
def shop() -> dict[str, Any]:
    return asyncapi_document(complex_app.app, title="Shop", version="2.1.0")


def demo_document() -> dict[str, Any]:
    return asyncapi_document(build_app(), title="Dispytch demo", version="1.0.0")


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = document
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_demo_document_is_valid_asyncapi(
    asyncapi_validator: jsonschema.Draft7Validator,
) -> None:
    document = demo_document()
    assert problems(asyncapi_validator, document) == []
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {"title": "Dispytch demo", "version": "1.0.0"}
    assert document["servers"]["memory"]["protocol"] == "memory"
    orders = document["channels"]["shop.region.orders"]
    assert orders["address"] == "shop.{region}.orders"
    assert list(orders["parameters"]) == ["region"]
    assert set(document["operations"]) >= {
        "send_OrderPlaced",
        "receive_bill",
        "receive_notify",
        "receive_dead_letters",
    }


def test_the_complex_document_is_valid_asyncapi(
    asyncapi_validator: jsonschema.Draft7Validator, shop: dict[str, Any]
) -> None:
    assert problems(asyncapi_validator, shop) == []
    assert shop["info"] == {"title": "Shop", "version": "2.1.0"}


def test_the_validator_rejects_what_asyncapi_forbids(
    asyncapi_validator: jsonschema.Draft7Validator, shop: dict[str, Any]
) -> None:
    shop["operations"]["send_OrderPlaced"]["action"] = "publish"  # the AsyncAPI 2 word
    del shop["info"]["version"]
    found = problems(asyncapi_validator, shop)
    assert any(p.startswith("info:") for p in found)
    assert any(p.startswith("operations/send_OrderPlaced") for p in found)


def test_every_reference_resolves_within_the_document(shop: dict[str, Any]) -> None:
    found = list(refs(shop))
    assert found
    for pointer in found:
        assert resolve(shop, pointer) is not None, pointer


def test_nested_model_definitions_are_lifted_into_components(shop: dict[str, Any]) -> None:
    schemas = shop["components"]["schemas"]
    assert {"OrderPlaced", "Line", "Money", "Currency", "Address", "Card", "Invoice"} <= set(
        schemas
    )
    assert "$defs" not in json.dumps(shop)
    assert schemas["Currency"]["enum"] == ["EUR", "USD"]
    order = schemas["OrderPlaced"]
    assert order["properties"]["lines"]["items"] == {"$ref": "#/components/schemas/Line"}
    assert {"$ref": "#/components/schemas/Address"} in order["properties"]["billing"]["anyOf"]
    assert "billing" not in order["required"]
    payment = order["properties"]["payment"]
    assert payment["discriminator"] == "kind"
    assert {"$ref": "#/components/schemas/Card"} in payment["oneOf"]
    message = shop["channels"]["shop.region.orders.customer_id"]["messages"]["order_placed"]
    envelope = message["payload"]
    assert envelope["required"] == ["id", "type", "body", "timestamp"]
    assert envelope["properties"]["type"]["const"] == "order_placed"
    assert envelope["properties"]["body"] == {"$ref": "#/components/schemas/OrderPlaced"}


def test_parameterised_topics_become_channels_with_parameters(shop: dict[str, Any]) -> None:
    orders = shop["channels"]["shop.region.orders.customer_id"]
    assert orders["address"] == "shop.{region}.orders.{customer_id}"
    assert set(orders["parameters"]) == {"region", "customer_id"}
    shipments = shop["channels"]["shop.region.shipments"]
    assert "`Region`" in shipments["parameters"]["region"]["description"]
    dead = shop["channels"]["dead.shop.wildcard1.orders.wildcard2"]
    assert dead["address"] == "dead.shop.{wildcard1}.orders.{wildcard2}"


def test_operations_send_what_is_emitted_and_receive_what_is_handled(
    shop: dict[str, Any],
) -> None:
    operations = shop["operations"]
    send = operations["send_OrderPlaced"]
    assert send["action"] == "send"
    assert send["channel"] == {"$ref": "#/channels/shop.region.orders.customer_id"}
    bill = operations["receive_bill"]
    assert bill["action"] == "receive"
    assert bill["summary"] == "Bill the customer for an order."
    assert bill["x-dispytch-group"] == "billing"
    assert bill["bindings"]["kafka"]["groupId"] == {"type": "string", "enum": ["billing"]}
    audit = operations["receive_audit"]  # event="*": every message of its channel
    assert audit["messages"] == [
        {"$ref": "#/channels/shop.region.orders.customer_id/messages/order_placed"}
    ]
    assert operations["receive_track"]["x-dispytch-group"] == "tracking"


def test_dead_letter_channels_carry_dead_letters(shop: dict[str, Any]) -> None:
    for address in ("shop.region.orders.customer_id.dlq", "dead.shop.wildcard1.orders.wildcard2"):
        channel = shop["channels"][address]
        message = channel["messages"]["dispytch.dead_letter"]
        assert message["payload"]["properties"]["body"] == {
            "$ref": "#/components/schemas/DeadLetter"
        }
        assert shop["operations"][f"send_dead_letter_{address}"]["action"] == "send"


def test_kafka_and_amqp_bindings(shop: dict[str, Any]) -> None:
    orders = shop["channels"]["shop.region.orders.customer_id"]
    key = orders["messages"]["order_placed"]["bindings"]["kafka"]["key"]
    assert "{customer_id}" in key["description"]
    exchange = shop["channels"]["shop.region.shipments"]["bindings"]["amqp"]
    assert exchange["is"] == "routingKey"
    assert exchange["exchange"]["name"] == "dispytch"
    assert exchange["exchange"]["vhost"] == "shop"
    queue = shop["channels"]["dispytch.tracking"]["bindings"]["amqp"]
    assert queue["queue"]["name"] == "dispytch.tracking"
    only_kafka = shop["channels"]["dead.shop.wildcard1.orders.wildcard2"]  # the Kafka listener's
    assert "bindings" not in only_kafka


def test_servers_keep_no_credentials(shop: dict[str, Any]) -> None:
    text = json.dumps(shop) + to_yaml(shop)
    for secret in ("kafka-s3cret-pw", "amqp-s3cret-pw", "query-s3cret", "token="):
        assert secret not in text
    kafka, rabbitmq = shop["servers"]["kafka"], shop["servers"]["rabbitmq"]
    assert kafka["host"] == "kafka-1:9092,kafka-2:9092"
    assert rabbitmq == {
        "host": "rabbit.internal:5672",
        "protocol": "amqp",
        "pathname": "/shop",
        "description": rabbitmq["description"],
        "security": [{"$ref": "#/components/securitySchemes/rabbitmq"}],
    }
    assert shop["components"]["securitySchemes"]["kafka"]["type"] == "plain"
    assert len(shop["servers"]) == 2  # an emitter and a listener on one broker share it


def test_a_password_in_a_redis_url_does_not_appear() -> None:
    listener = EventListener.from_url("redis://:redis-s3cret-pw@cache:6380/2", group="g")

    @listener.handler(topic="jobs", event="job")
    async def work(event: Event[dict[str, Any]]) -> None: ...

    document = asyncapi_document(listeners=[listener])
    assert "redis-s3cret-pw" not in json.dumps(document)
    assert document["servers"]["redis"]["host"] == "cache:6380"


def test_no_password_of_a_cluster_url_appears(
    asyncapi_validator: jsonschema.Draft7Validator,
) -> None:
    cluster = "nats://app:first-s3cret@n1:4222,nats://app:second-s3cret@n2:4222"
    listener = EventListener.from_url(cluster, group="g")

    @listener.handler(topic="jobs", event="job")
    async def work(event: Event[dict[str, Any]]) -> None: ...

    document = asyncapi_document(listeners=[listener])
    assert problems(asyncapi_validator, document) == []
    assert "s3cret" not in json.dumps(document)
    server = document["servers"]["nats"]
    assert server["host"] == "n1:4222,n2:4222"
    assert "pathname" not in server
    assert document["operations"]["receive_work"]["bindings"] == {
        "nats": {"queue": "g", "bindingVersion": "0.1.0"}
    }


def test_slashes_in_topics_and_event_types_keep_references_working(
    asyncapi_validator: jsonschema.Draft7Validator,
) -> None:
    listener = EventListener.from_url(
        "memory://audit", group="auditors", listener_options={"topic_delimiter": "/"}
    )

    @listener.handler(topic="audit/{tenant}/log", event="audit/entry", dead_letter_topic=None)
    async def keep(event: Event[Audited]) -> None: ...

    document = asyncapi_document(listeners=[listener], emits=[Audited])
    assert problems(asyncapi_validator, document) == []
    channel = document["channels"]["audit_tenant_log"]
    assert channel["address"] == "audit/{tenant}/log"
    assert channel["messages"]["audit_entry"]["name"] == "audit/entry"
    for pointer in refs(document):
        assert resolve(document, pointer) is not None, pointer
    assert not any(address.endswith(".dlq") for address in document["channels"])


def test_a_batch_handler_receives_its_events_body_schema() -> None:
    listener = EventListener.from_url("memory://batches", group="g")

    @listener.handler(topic="audit", event="entry", batch=Batch(max_size=10, max_wait=0.1))
    async def keep(events: list[Event[Entry]]) -> None: ...

    document = asyncapi_document(listeners=[listener])
    body = document["channels"]["audit"]["messages"]["entry"]["payload"]["properties"]["body"]
    assert body == {"$ref": "#/components/schemas/Entry"}


class Quote(BaseModel):
    price: float


def test_a_handler_that_returns_a_value_replies_to_requests(
    asyncapi_validator: jsonschema.Draft7Validator,
) -> None:
    listener = EventListener.from_url("memory://quotes", group="pricing")

    @listener.handler(topic="quotes", event="quote_requested")
    async def quote(event: Event[Entry]) -> Quote:
        return Quote(price=1.0)

    @listener.handler(topic="quotes", event="noted")
    async def note(event: Event[Entry]) -> None: ...

    document = asyncapi_document(listeners=[listener])
    assert problems(asyncapi_validator, document) == []
    reply = document["operations"]["receive_quote"]["reply"]
    assert reply["address"]["location"] == "$message.header#/dispytch-reply-to"
    assert reply["channel"] == {"$ref": "#/channels/dispytch.replies"}
    replies = document["channels"]["dispytch.replies"]
    assert replies["address"] is None
    answer, error = (resolve(document, m["$ref"]) for m in reply["messages"])
    assert answer["name"] == "dispytch.reply"
    assert answer["payload"]["properties"]["body"] == {"$ref": "#/components/schemas/Quote"}
    assert error["payload"]["properties"]["body"] == {"$ref": "#/components/schemas/ReplyError"}
    assert "reply" not in document["operations"]["receive_note"]


def test_yaml_output_reads_back_as_the_same_document(shop: dict[str, Any]) -> None:
    assert yaml.safe_load(to_yaml(shop)) == shop

"""The exchange, queues and bindings Dispytch uses, declared idempotently or looked up.

With `declare=True` everything is declared (declaring what already exists with the
same options is a no-op); with `declare=False` it must already exist and is only
checked, so that a missing piece fails at start-up with its name rather than later.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aio_pika.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from dispytch.routing import TopicPattern
from dispytch_rabbitmq.settings import RabbitMQSettings


class TopologyError(RuntimeError):
    """An exchange or queue is missing, or exists with options that do not match."""


def binding_keys(patterns: Iterable[TopicPattern], settings: RabbitMQSettings) -> list[str]:
    """The routing keys that bind a group's queue for its handlers' topic patterns.

    `{param}` and `*` segments become the AMQP `*` wildcard and segments are joined by `.`.
    """
    if settings.exchange_type == "fanout":
        return [""]
    keys: list[str] = []
    for pattern in patterns:
        if settings.exchange_type == "direct" and not pattern.is_literal:
            raise TopologyError(
                f"handler topic {pattern.text!r} has wildcards, but exchange "
                f"{settings.exchange!r} is a direct exchange that routes exact keys only: "
                "use exchange_type='topic'"
            )
        key = pattern.with_wildcards("*", ".")
        if key not in keys:
            keys.append(key)
    return keys


async def exchange(channel: AbstractChannel, settings: RabbitMQSettings) -> AbstractExchange:
    """The exchange events are published to.

    With `unroutable="keep"` it is declared with an alternate exchange, declared first
    together with the queue that keeps what reaches it.
    """
    name = settings.exchange
    arguments: dict[str, Any] = {}
    if settings.declare and settings.unroutable == "keep":
        arguments["alternate-exchange"] = await _unroutable_queue(channel, settings)
    try:
        if not settings.declare:
            return await channel.get_exchange(name, ensure=True)
        return await channel.declare_exchange(
            name, settings.exchange_type, durable=settings.durable, arguments=arguments
        )
    except ChannelNotFoundEntity as exc:
        raise TopologyError(
            f"exchange {name!r} does not exist and declare=False: create it, or set declare=True"
        ) from exc
    except ChannelPreconditionFailed as exc:
        alternate = arguments.get("alternate-exchange")
        raise TopologyError(
            f"exchange {name!r} already exists with another type, durability or alternate "
            f"exchange than {settings.exchange_type!r}, durable={settings.durable}, "
            f"alternate exchange {alternate!r} ({exc}): set `exchange_type`, `durable` and "
            "`unroutable` alike on every service of this exchange, or delete it"
        ) from exc


async def required_group_queues(channel: AbstractChannel, settings: RabbitMQSettings) -> None:
    """Declare and bind the queues of `required_groups`, as their listeners would."""
    for subscription in settings.required_subscriptions():
        await group_queue(channel, settings, subscription.group, subscription.patterns)


async def group_queue(
    channel: AbstractChannel,
    settings: RabbitMQSettings,
    group: str,
    patterns: Iterable[TopicPattern],
) -> AbstractQueue:
    """The queue of `group`, bound to the exchange for `patterns`.

    Declaring also declares the queue keeping Dispytch's dead letters and, when a
    dead-letter exchange is configured, the group's native dead-letter queue.
    """
    name = settings.queue_name(group)
    if not settings.declare:
        return await _existing_queue(channel, name)
    if name == settings.dead_letter_queue_name():
        raise TopologyError(
            f"group {group!r} would consume {name!r}, the queue that keeps dead letters: "
            "rename the group or change the 'queue' or 'dead_letter_queue' setting"
        )
    if settings.unroutable == "keep" and name == settings.unroutable_queue_name():
        raise TopologyError(
            f"group {group!r} would consume {name!r}, the queue that keeps unroutable events: "
            "rename the group or change the 'queue' or 'unroutable_queue' setting"
        )
    source = await exchange(channel, settings)
    arguments = _queue_arguments(settings)
    if settings.dead_letter_exchange is not None:
        await _native_dead_letter_queue(channel, settings, settings.dead_letter_exchange, name)
        arguments["x-dead-letter-exchange"] = settings.dead_letter_exchange
        arguments["x-dead-letter-routing-key"] = name
    queue = await _declare_queue(channel, name, settings.durable, arguments)
    keys = binding_keys(patterns, settings)
    for key in keys:
        await queue.bind(source, key)
    await _dead_letter_queue(channel, settings, source, keys)
    return queue


async def _dead_letter_queue(
    channel: AbstractChannel,
    settings: RabbitMQSettings,
    source: AbstractExchange,
    keys: list[str],
) -> None:
    """Keep the dead letters Dispytch publishes as `<topic>.dlq`, so none is unroutable.

    Every service on the exchange declares this queue, so its options never vary: a
    durable classic queue, whatever the group queues are.
    """
    name = settings.dead_letter_queue_name()
    if name is None or settings.exchange_type == "fanout":
        return  # fanout ignores routing keys: use a dead-letter exchange instead
    queue = await _declare_queue(channel, name, durable=True, arguments={})
    topic = settings.exchange_type == "topic"
    for key in ["#.dlq"] if topic else [f"{k}.dlq" for k in keys]:
        await queue.bind(source, key)


async def _unroutable_queue(channel: AbstractChannel, settings: RabbitMQSettings) -> str:
    """Declare the fanout alternate exchange and the queue bound to it; return its name.

    Like the dead-letter queue, it is a durable classic queue whatever the group queues are.
    """
    name = settings.unroutable_queue_name()
    try:
        alternate = await channel.declare_exchange(name, "fanout", durable=True)
    except ChannelPreconditionFailed as exc:
        raise TopologyError(
            f"exchange {name!r}, the alternate exchange for unroutable events, exists but is "
            f"not a durable fanout exchange ({exc}): delete it, or set `unroutable_queue`"
        ) from exc
    queue = await _declare_queue(channel, name, durable=True, arguments={})
    await queue.bind(alternate, "")
    return name


async def _native_dead_letter_queue(
    channel: AbstractChannel, settings: RabbitMQSettings, dlx_name: str, group_queue: str
) -> None:
    """`<queue>.dlq`, where the broker puts what the group's queue dead-letters."""
    try:
        dlx = await channel.declare_exchange(dlx_name, "direct", durable=settings.durable)
    except ChannelPreconditionFailed as exc:
        raise TopologyError(
            f"dead-letter exchange {dlx_name!r} exists but is not a "
            f"{'durable' if settings.durable else 'transient'} direct exchange ({exc})"
        ) from exc
    queue = await _declare_queue(
        channel, f"{group_queue}.dlq", settings.durable, _queue_arguments(settings)
    )
    await queue.bind(dlx, group_queue)


def _queue_arguments(settings: RabbitMQSettings) -> dict[str, Any]:
    return {"x-queue-type": "quorum"} if settings.quorum else {}


async def _declare_queue(
    channel: AbstractChannel, name: str, durable: bool, arguments: dict[str, Any]
) -> AbstractQueue:
    try:
        return await channel.declare_queue(name, durable=durable, arguments=arguments)
    except ChannelPreconditionFailed as exc:
        raise TopologyError(
            f"queue {name!r} already exists with other options than durable={durable}, "
            f"arguments={arguments} ({exc}): delete the queue (it is declared again), "
            "or match the settings it was created with"
        ) from exc


async def _existing_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    try:
        return await channel.get_queue(name, ensure=True)
    except ChannelNotFoundEntity as exc:
        raise TopologyError(
            f"queue {name!r} does not exist and declare=False: create and bind it, "
            "or set declare=True"
        ) from exc

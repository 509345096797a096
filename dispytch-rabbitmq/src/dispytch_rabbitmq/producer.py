"""The RabbitMQ producer: persistent messages, publisher confirms, unroutable messages reported."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aio_pika import DeliveryMode
from aio_pika import Message as AMQPMessage
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ConnectionClosed,
    DeliveryError,
    PublishError,
)
from aiormq import spec
from aiormq.abc import DeliveredMessage
from pydantic import BaseModel

from dispytch._deadlines import Deadlines
from dispytch.emitter.producer import OutgoingMessage, Producer, ProducerTimeout
from dispytch_rabbitmq import topology
from dispytch_rabbitmq.config import AMQP_PROPERTIES, RabbitMQEventConfig
from dispytch_rabbitmq.connection import RabbitMQConnectionError, connect
from dispytch_rabbitmq.settings import RabbitMQSettings

_CONNECTION_LOST = (ConnectionError, ConnectionClosed, ChannelInvalidStateError)
_REOPEN_POLL_INTERVAL = 0.05  # seconds between checks while aio-pika has not yet noticed a loss


class RabbitMQPublishError(Exception):
    """The broker did not accept a published message."""


class UnroutableMessage(RabbitMQPublishError):
    """No queue is bound for a message published as mandatory."""


class RabbitMQProducer(Producer):
    """Publishes events to RabbitMQ and returns once the broker confirmed them.

    `RabbitMQProducer([exchange, ...], timeout=...)` publishes through aio-pika exchanges
    you declared yourself, as in Dispytch 0.10: the first is the default and
    `RabbitMQEventConfig(exchange=...)` picks another. `RabbitMQProducer(settings=...)`
    connects on `start()` and declares its exchange and the queues of `required_groups`
    (what `EventEmitter.from_backend` does). The topic is the routing key.

    Every message is published as mandatory: one that no queue is bound for raises
    `UnroutableMessage`, unless the exchange has an alternate exchange that keeps it
    (`unroutable="keep"`).
    """

    def __init__(
        self,
        exchanges: Sequence[AbstractExchange] = (),
        timeout: float | None = None,
        *,
        settings: RabbitMQSettings | None = None,
    ) -> None:
        if bool(exchanges) == (settings is not None):
            raise TypeError(
                "RabbitMQProducer takes either a list of aio-pika exchanges or settings=..."
            )
        self.exchanges = {e.name: e for e in exchanges}
        self.timeout = timeout if settings is None else settings.publish_timeout
        self._default = exchanges[0].name if exchanges else ""
        if settings is not None:
            self._default = settings.exchange
        self._settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._starting = asyncio.Lock()

    @property
    def timeout(self) -> float | None:
        """Seconds a publish may wait for its confirm, reconnects included (None: no limit)."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._deadlines = None if timeout is None else Deadlines(timeout)

    async def start(self) -> None:
        """Connect, declare the exchange and the queues of `required_groups` (settings only;
        exchanges given are used as is)."""
        async with self._starting:
            if self._settings is None or self._connection is not None:
                return
            connection = await connect(self._settings, "producer")
            try:
                channel = await connection.channel(publisher_confirms=True)
                exchange = await topology.exchange(channel, self._settings)
                await topology.required_group_queues(channel, self._settings)
            except BaseException:
                await connection.close()
                raise
            self.exchanges = {exchange.name: exchange}
            self._connection, self._channel = connection, channel

    async def stop(self) -> None:
        """Close the connection this producer opened."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            self.exchanges = {}
            await connection.close()

    async def ping(self) -> None:
        """Connect if needed; raise unless the connection and channel are open."""
        await self.start()
        if self._connection is not None and self._connection.is_closed:
            raise ConnectionError("the connection to RabbitMQ is closed")
        if self._channel is not None and self._channel.is_closed:
            raise ConnectionError("the publishing channel to RabbitMQ is closed")

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """Publish `payload` with routing key `topic`; see `publish`."""
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish a message and wait for the broker's confirmation.

        Raises `UnroutableMessage` when the message reached no queue,
        `RabbitMQPublishError` when the broker refused it, and `ProducerTimeout`
        when no confirmation came within the timeout (which includes waiting for
        a lost connection to come back).
        """
        config = _event_config(message.config)
        exchange_name = config.exchange or self._default
        exchange = self.exchanges.get(exchange_name)
        if exchange is None:
            exchange = await self._unknown_exchange(exchange_name)
        amqp_message, routing_key = _amqp_message(message, config), self._routing_key(message.topic)
        # All in this one coroutine: a publish in flight holds what it allocated until its
        # confirm, and with thousands in flight the garbage collector's walks over them
        # cost more than the publishing does.
        deadline = None
        if self._deadlines is not None:
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("a publish deadline needs to run in an asyncio task")
            deadline = self._deadlines.begin(task)
        lost: Exception | None = None
        try:
            while True:
                try:
                    result = await exchange.publish(amqp_message, routing_key, mandatory=True)
                    break
                except _CONNECTION_LOST as exc:
                    lost = exc
                    await _await_reconnect(exchange, deadline is not None, exc)
        except asyncio.CancelledError:
            if deadline is None or not deadline.timed_out():
                raise
            if lost is None:
                raise ProducerTimeout(
                    f"RabbitMQ did not confirm a message to {exchange.name!r} with routing "
                    f"key {routing_key!r} within {self.timeout}s"
                ) from None
            raise ProducerTimeout(
                f"lost the connection to RabbitMQ while publishing to {exchange.name!r} and "
                f"it did not come back within {self.timeout}s ({type(lost).__name__}: {lost})"
            ) from lost
        except PublishError as exc:
            raise _unroutable(exchange.name, routing_key, exc.message) from exc
        except DeliveryError as exc:
            raise RabbitMQPublishError(
                f"RabbitMQ refused a message to {exchange.name!r} with routing key "
                f"{routing_key!r} ({exc.frame}); a queue limit may be reached"
            ) from exc
        except ChannelNotFoundEntity as exc:
            raise RabbitMQPublishError(
                f"exchange {exchange.name!r} does not exist on the broker: declare it "
                "(declare=True does for the producer's own exchange)"
            ) from exc
        finally:
            if deadline is not None:
                deadline.end()
        if isinstance(result, DeliveredMessage):  # returned: on_return_raises is off
            raise _unroutable(exchange.name, routing_key, result)

    async def _unknown_exchange(self, name: str) -> AbstractExchange:
        """The exchange `name`, which `exchanges` does not hold yet: there once the producer
        started, or looked up on the channel and kept."""
        if not self.exchanges:
            await self.start()
        if name in self.exchanges:
            return self.exchanges[name]
        if self._channel is None:
            raise ValueError(
                f"RabbitMQEventConfig names exchange {name!r}, but this producer was given "
                f"{sorted(self.exchanges)}: pass that exchange to RabbitMQProducer too"
            )
        found = await self._channel.get_exchange(name, ensure=False)
        self.exchanges[name] = found
        return found

    def _routing_key(self, topic: str) -> str:
        return topic if self._settings is None else self._settings.routing_key(topic)


async def _await_reconnect(
    exchange: AbstractExchange, within_deadline: bool, lost: Exception
) -> None:
    """Wait until a robust channel is back (the publish's deadline still runs); raise if
    there is no deadline or no robust channel to wait for."""
    channel = getattr(exchange, "channel", None)
    if not isinstance(channel, AbstractRobustChannel) or not within_deadline:
        raise RabbitMQConnectionError(
            f"lost the connection to RabbitMQ while publishing to {exchange.name!r} "
            f"({type(lost).__name__}: {lost}); the message was not confirmed"
        ) from lost
    await _reopened(channel)


async def _reopened(channel: AbstractRobustChannel) -> None:
    """Return once the robust channel is open again after it was lost.

    `channel.ready()` alone does not do: right after the loss, until aio-pika's close
    callbacks have run, it still reports the lost channel as ready and returns without
    suspending. A publish retried at once would then fail at once again, and the retry loop
    would spin without ever yielding to the event loop: the callbacks that notice the loss
    never run, and everything else on the loop (other emits, listeners, the publish
    deadlines) stalls. Hence the yield first, and a short pause while the channel still
    counts as closed.
    """
    await asyncio.sleep(0)
    while True:
        await channel.ready()
        if not channel.is_closed:
            return
        await asyncio.sleep(_REOPEN_POLL_INTERVAL)


def _amqp_message(message: OutgoingMessage, config: RabbitMQEventConfig) -> AMQPMessage:
    """`message` as aio-pika's, persistent unless `config` says otherwise, with the headers
    and the AMQP properties `config` sets: only those, as aio-pika builds a message faster
    the fewer properties it is given."""
    headers: dict[str, Any] = (
        {**config.headers, **message.headers} if config.headers else dict(message.headers)
    )
    set_fields = config.model_fields_set
    if not set_fields:  # the usual case, and the shortest call
        return AMQPMessage(message.payload, headers=headers, delivery_mode=DeliveryMode.PERSISTENT)
    properties = {
        name: getattr(config, name)
        for name in set_fields
        if name in AMQP_PROPERTIES and name != "delivery_mode"
    }
    delivery_mode = config.delivery_mode or DeliveryMode.PERSISTENT
    return AMQPMessage(message.payload, headers=headers, delivery_mode=delivery_mode, **properties)


def _event_config(config: BaseModel | None) -> RabbitMQEventConfig:
    if config is None:
        return _DEFAULT_CONFIG
    if not isinstance(config, RabbitMQEventConfig):
        raise TypeError(
            f"the RabbitMQ backend takes a RabbitMQEventConfig as __backend_config__, "
            f"got {type(config).__name__}"
        )
    return config


_DEFAULT_CONFIG = RabbitMQEventConfig()


def _unroutable(
    exchange: str, routing_key: str, returned: DeliveredMessage | None
) -> UnroutableMessage:
    frame = returned.delivery if returned is not None else None
    reply = frame.reply_text if isinstance(frame, spec.Basic.Return) else None
    return UnroutableMessage(
        f"RabbitMQ could not route a message on exchange {exchange!r} with routing key "
        f"{routing_key!r} ({reply or 'NO_ROUTE'}): no queue is bound for it. Start a listener "
        "for this topic first (it declares and binds its queue), name its group in the "
        "emitter's required_groups setting, bind a queue yourself, or set unroutable='keep' "
        "to keep such events in an alternate-exchange queue"
    )

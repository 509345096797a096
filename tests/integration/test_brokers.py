"""The broker tooling (tools/brokers.py) runs real brokers that real clients can use."""

from __future__ import annotations

import asyncio
import socket

import pytest

from brokers import BrokerError, KafkaServer, NatsServer, RabbitMQServer, RedisServer, free_port


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_free_port_can_be_bound() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))


# --- Redis ----------------------------------------------------------------------------------


async def redis_round_trip(url: str) -> None:
    aioredis = pytest.importorskip("redis.asyncio")
    client = aioredis.Redis.from_url(url)
    try:
        await client.set("greeting", b"hello")
        assert await client.get("greeting") == b"hello"
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_fixture_serves_clients(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    await redis_round_trip(redis_server.url)


@pytest.mark.redis
async def test_redis_restart_and_kill_keep_the_port() -> None:
    with RedisServer() as server:
        server.restart()
        await redis_round_trip(server.url)
        server.kill()
        assert not accepts_connections(server.port)
        server.start()
        await redis_round_trip(server.url)
    assert not accepts_connections(server.port)
    assert not server.directory.exists()


@pytest.mark.redis
def test_start_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RedisServer(port=taken.getsockname()[1])
        with pytest.raises(BrokerError, match="already in use"):
            server.start()
        server.close()


@pytest.mark.redis
def test_start_failure_reports_the_broker_log() -> None:
    with socket.socket() as bound:  # bound but not listening: Redis fails to bind
        bound.bind(("127.0.0.1", 0))
        server = RedisServer(port=bound.getsockname()[1])
        with pytest.raises(BrokerError, match=r"(?s)exited.*Address already in use"):
            server.start()
        assert not server.running
        server.close()


# --- RabbitMQ -------------------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_rabbitmq_fixture_serves_clients(rabbitmq_server: RabbitMQServer) -> None:
    aio_pika = pytest.importorskip("aio_pika")
    async with await aio_pika.connect(rabbitmq_server.url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"hello"), queue.name)
        message = await queue.get(timeout=5)
        assert message.body == b"hello"
        await message.ack()


@pytest.mark.rabbitmq
async def test_rabbitmq_durable_messages_survive_restart() -> None:
    aio_pika = pytest.importorskip("aio_pika")
    with RabbitMQServer() as server:
        async with await aio_pika.connect(server.url) as connection:
            channel = await connection.channel()  # publisher confirms: published means stored
            await channel.declare_queue("kept", durable=True)
            persistent = aio_pika.Message(b"hello", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await channel.default_exchange.publish(persistent, "kept")

        port = server.port
        server.restart()
        assert server.port == port
        assert "kept\t1" in server.rabbitmqctl("list_queues", "name", "messages")

        async with await aio_pika.connect(server.url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("kept", durable=True)
            message = await queue.get(timeout=5)
            assert message.body == b"hello"
            await message.ack()


# --- Kafka ----------------------------------------------------------------------------------


async def kafka_round_trip(bootstrap: str, topic: str) -> None:
    aiokafka = pytest.importorskip("aiokafka")
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello")
    finally:
        await producer.stop()
    consumer = aiokafka.AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=10)
        assert message.value == b"hello"
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_kafka_fixture_serves_clients(kafka_server: KafkaServer) -> None:
    assert kafka_server.url == f"kafka://{kafka_server.bootstrap}"
    await kafka_round_trip(kafka_server.bootstrap, "fixture-round-trip")


@pytest.mark.kafka
async def test_kafka_restart_keeps_the_port() -> None:
    with KafkaServer() as server:
        await kafka_round_trip(server.bootstrap, "before-restart")
        server.restart()
        await kafka_round_trip(server.bootstrap, "after-restart")


# --- NATS -----------------------------------------------------------------------------------


async def nats_stored_messages(url: str, stream: str, publish: bool) -> int:
    """Publish one message to JetStream stream `stream` (created if missing) if `publish`;
    return how many messages the stream holds."""
    nats = pytest.importorskip("nats")
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        if publish:
            await js.add_stream(name=stream, subjects=[f"{stream}.>"])
            await js.publish(f"{stream}.greeting", b"hello")
        return int((await js.stream_info(stream)).state.messages)
    finally:
        await client.close()


@pytest.mark.nats
async def test_nats_fixture_serves_jetstream(nats_server: NatsServer) -> None:
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert await nats_stored_messages(nats_server.url, "fixture", publish=True) == 1


@pytest.mark.nats
async def test_nats_restart_keeps_the_port_and_the_streams() -> None:
    with NatsServer() as server:
        assert await nats_stored_messages(server.url, "kept", publish=True) == 1
        server.restart()
        assert await nats_stored_messages(server.url, "kept", publish=False) == 1
        server.kill()
        assert not accepts_connections(server.port)
    assert not server.directory.exists()

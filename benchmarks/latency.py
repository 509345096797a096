"""Latency at a fixed offered rate, measured end to end.

A separate process (this file run as a script) emits at `rate` events/s with the broker's
plain client, stamping each event's body with `sent_ns = time.monotonic_ns()` (a clock
every process of the machine shares) just before sending it. The consumer under test runs
in the benchmark process; its handler records `time.monotonic_ns() - sent_ns` for every
event past the warm-up (by sequence number, `user_id`). A round is `WARM_UP` seconds of
warm-up and `seconds` measured; it reports p50/p99/p99.9/max in milliseconds and how many
of the measured events arrived (waiting up to `GRACE` seconds after the emitter ends).

    python benchmarks/latency.py SENDER URL TOPIC RATE WARM_UP SECONDS

A broker's sender is registered in SENDERS: a function opening the client and returning
`send(payloads)` that sends a burst of encoded envelopes to the topic.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]

from harness import COUNTER, envelope, sample_body  # noqa: E402

WARM_UP = 3.0
"""Seconds emitted before measuring: consumers join, connections and caches warm up."""
GRACE = 10.0
"""Seconds the last measured events may take to arrive after the emitter ended."""

Send = Callable[[list[bytes]], Awaitable[None]]
Sender = Callable[[str, str], AbstractAsyncContextManager[Send]]


@asynccontextmanager
async def _kafka(bootstrap: str, topic: str) -> AsyncIterator[Send]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    deliveries: list[asyncio.Future[object]] = []

    async def send(payloads: list[bytes]) -> None:
        deliveries.extend([await producer.send(topic, p) for p in payloads])

    try:
        yield send
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


def _redis(field: str) -> Sender:
    """XADD each payload as the entry field `field`."""

    @asynccontextmanager
    async def sender(url: str, topic: str) -> AsyncIterator[Send]:
        from redis.asyncio import Redis

        client = Redis.from_url(url)

        async def send(payloads: list[bytes]) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.xadd(topic, {field: payload})
                await pipe.execute()

        try:
            yield send
        finally:
            await client.aclose()

    return sender


@asynccontextmanager
async def _redis_pubsub(url: str, topic: str) -> AsyncIterator[Send]:
    from redis.asyncio import Redis

    client = Redis.from_url(url)

    async def send(payloads: list[bytes]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(topic, payload)
            await pipe.execute()

    try:
        yield send
    finally:
        await client.aclose()


@asynccontextmanager
async def _rabbitmq(url: str, topic: str) -> AsyncIterator[Send]:
    import aio_pika

    exchange_name, _, routing_key = topic.partition("/")
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.get_exchange(exchange_name)

        async def send(payloads: list[bytes]) -> None:
            for payload in payloads:
                await exchange.publish(
                    aio_pika.Message(payload, content_type="application/json"), routing_key
                )

        yield send


@asynccontextmanager
async def _nats_core(url: str, topic: str) -> AsyncIterator[Send]:
    """Core NATS publishes: nats-py writes each burst out at once, unacknowledged."""
    import nats

    client = await nats.connect(url)

    async def send(payloads: list[bytes]) -> None:
        for payload in payloads:
            await client.publish(topic, payload)

    try:
        yield send
        await client.flush()
    finally:
        await client.close()


@asynccontextmanager
async def _nats_jetstream(url: str, topic: str) -> AsyncIterator[Send]:
    """JetStream publishes, pipelined (`publish_async`): each burst is sent without waiting
    for the stream's acknowledgements, and all of them are awaited at the end."""
    import nats

    client = await nats.connect(url)
    js = client.jetstream()
    acks: list[Awaitable[object]] = []

    async def send(payloads: list[bytes]) -> None:
        acks.extend([await js.publish_async(topic, p) for p in payloads])

    try:
        yield send
        await asyncio.gather(*acks)
    finally:
        await client.close()


@asynccontextmanager
async def _sqs(url: str, topic: str) -> AsyncIterator[Send]:
    """Publish to the SNS topic of Dispytch topic `topic` (URL: the server's `sqs://` URL)
    in PublishBatch requests of ten, sent at once, as Dispytch's producer does."""
    from aiobotocore.session import get_session

    from dispytch_sqs.naming import topic_name
    from dispytch_sqs.settings import SQSSettings

    attributes = {"dispytch.topic": {"DataType": "String", "StringValue": topic}}
    options = SQSSettings.from_url(url).client_options()
    async with get_session().create_client("sns", **options) as sns:
        arn = (await sns.create_topic(Name=topic_name(topic)))["TopicArn"]

        async def publish(batch: list[bytes]) -> None:
            entries = [
                {"Id": str(i), "Message": p.decode(), "MessageAttributes": attributes}
                for i, p in enumerate(batch)
            ]
            await sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=entries)

        async def send(payloads: list[bytes]) -> None:
            await asyncio.gather(
                *(publish(payloads[i : i + 10]) for i in range(0, len(payloads), 10))
            )

        yield send


SENDERS: dict[str, Sender] = {
    "kafka": _kafka,
    "redis": _redis("payload"),
    "redis-faststream": _redis("__data__"),  # the entry field FastStream reads
    "redis-pubsub": _redis_pubsub,
    "rabbitmq": _rabbitmq,  # TOPIC is "<exchange>/<routing key>"
    "nats": _nats_jetstream,  # TOPIC is a subject a stream captures
    "nats-core": _nats_core,
    "sqs": _sqs,  # URL is the server's sqs:// URL, TOPIC the Dispytch topic
}


async def emit_paced(broker: str, url: str, topic: str, rate: int, warm: float, secs: float) -> int:
    """Send `rate` events/s for `warm + secs` seconds, numbered from 0; return how many."""
    total = int(rate * (warm + secs))
    async with SENDERS[broker](url, topic) as send:
        start, sent = time.monotonic(), 0
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            if due > sent:
                stamp = time.monotonic_ns()
                await send(
                    [
                        json.dumps(envelope(i, {**sample_body(i), "sent_ns": stamp})).encode()
                        for i in range(sent, due)
                    ]
                )
                sent = due
            else:
                await asyncio.sleep(max(start + sent / rate - time.monotonic(), 0.0))
    return total


Consumer = Callable[[], AbstractAsyncContextManager[object]]
"""Starts a consumer under test and returns once it is ready; stops it on exit."""


async def measure(
    sender: str, url: str, topic: str, rate: int, seconds: float, consumer: Consumer
) -> dict[str, float]:
    """One round: start `consumer`, run the paced emitter process (`SENDERS[sender]`)
    into `topic`, and return the latency percentiles (ms) of the measured events and how
    many arrived."""
    warm = int(rate * WARM_UP)
    measured = int(rate * seconds)
    COUNTER.reset(warm + measured, record=True, warm_up=warm)
    async with consumer():
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            sender,
            url,
            topic,
            str(rate),
            str(WARM_UP),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        if process.returncode:
            raise RuntimeError(f"the paced emitter {sender} failed ({process.returncode})")
        with suppress(asyncio.TimeoutError):  # what has not arrived by then is counted lost
            await asyncio.wait_for(COUNTER.reached.wait(), GRACE)
    recorded, COUNTER.latencies = COUNTER.latencies or [], None
    latencies = sorted(recorded) or [0]
    return {
        "p50": _ms(statistics.median(latencies)),
        "p99": _ms(_percentile(latencies, 0.99)),
        "p999": _ms(_percentile(latencies, 0.999)),
        "max": _ms(latencies[-1]),
        "sent": float(json.loads(out)["sent"] - warm),
        "arrived": float(len(recorded)),
    }


def _percentile(ordered: list[int], q: float) -> float:
    return float(ordered[min(int(q * len(ordered)), len(ordered) - 1)])


def _ms(ns: float) -> float:
    return ns / 1e6


if __name__ == "__main__":
    broker, url, topic, rate, warm, secs = sys.argv[1:7]
    sent = asyncio.run(emit_paced(broker, url, topic, int(rate), float(warm), float(secs)))
    print(json.dumps({"sent": sent}))

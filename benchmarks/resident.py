"""Resident memory of a consumer process, after handling growing numbers of events.

Each measurement is a fresh process (this file run as a script) so that nothing the
benchmark process holds counts:

    python benchmarks/resident.py memory raw|dispytch POINTS
    python benchmarks/resident.py kafka raw|dispytch POINTS BOOTSTRAP TOPIC GROUP

It starts the consumer, then reads its resident set size (from /proc, after a garbage
collection) once it is ready (0 events) and each time it has handled the next number of
events in POINTS (comma-separated), and prints them as JSON. On the memory backend this
process also feeds the events, 10,000 at a time, each batch once the previous one was
handled, so the broker never holds more than a batch; on Kafka the topic is pre-loaded.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]

from dispytch import EventListener  # noqa: E402
from harness import (  # noqa: E402
    COUNTER,
    Payload,
    counter_dependency,
    encoded,
    handler,
    in_background,
    listening,
)

FEED = 10_000
TOPIC = "bench.memory"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_mib() -> float:
    """This process's resident set size in MiB, after a full garbage collection."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE / 2**20


Running = Callable[[], AbstractAsyncContextManager[None]]


async def measure(
    consumer: Running, points: list[int], feed: Callable[[int], Awaitable[None]] | None
) -> dict[int, float]:
    """Resident MiB once `consumer` is ready and after it handled each of `points`."""
    COUNTER.reset()
    sizes: dict[int, float] = {}
    fed = 0
    async with consumer():
        sizes[0] = resident_mib()
        for point in points:
            while COUNTER.count < point:
                if feed is not None and COUNTER.count >= fed:
                    batch = min(FEED, point - fed)
                    await feed(batch)
                    fed += batch
                await asyncio.sleep(0.001)
            sizes[point] = resident_mib()
    return sizes


# -- the memory backend --------------------------------------------------------------------------


def _memory(implementation: str) -> tuple[Running, Callable[[int], Awaitable[None]]]:
    from dispytch.backends.memory import MemoryConsumer, MemoryProducer, get_broker
    from dispytch.emitter.producer import OutgoingMessage
    from dispytch.routing import TopicPattern

    name = uuid.uuid4().hex
    broker = get_broker(name)
    broker.join("bench", [TopicPattern(TOPIC)])
    producer = MemoryProducer(broker)
    payloads = [encoded(i) for i in range(FEED)]

    async def feed(n: int) -> None:
        for payload in payloads[:n]:
            await producer.publish(OutgoingMessage(TOPIC, payload))

    @asynccontextmanager
    async def raw() -> AsyncIterator[None]:
        consumer = MemoryConsumer(broker, "bench", [TopicPattern(TOPIC)])
        await consumer.start()

        async def loop() -> None:
            async for msg in consumer.listen():
                data = json.loads(msg.payload)
                await handler(Payload.model_validate(data["body"]), counter_dependency())
                consumer.ack(msg)

        try:
            async with in_background(loop()):
                yield
        finally:
            await consumer.stop()

    @asynccontextmanager
    async def dispytch() -> AsyncIterator[None]:
        listener = EventListener.from_url(f"memory://{name}", group="bench")
        async with listening(listener, TOPIC):
            yield

    return (raw if implementation == "raw" else dispytch), feed


# -- Kafka ---------------------------------------------------------------------------------------


def _kafka(implementation: str, bootstrap: str, topic: str, group: str) -> Running:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    @asynccontextmanager
    async def raw() -> AsyncIterator[None]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()

        async def loop() -> None:
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        data = json.loads(record.value)
                        await handler(Payload.model_validate(data["body"]), counter_dependency())
                if batch:
                    await consumer.commit(
                        {
                            TopicPartition(tp.topic, tp.partition): r[-1].offset + 1
                            for tp, r in batch.items()
                        }
                    )

        try:
            async with in_background(loop()):
                yield
        finally:
            await consumer.stop()

    @asynccontextmanager
    async def dispytch() -> AsyncIterator[None]:
        listener = EventListener.from_backend("kafka", group=group, bootstrap_servers=bootstrap)
        async with listening(listener, topic):
            yield

    return raw if implementation == "raw" else dispytch


def main() -> None:
    backend, implementation, points = sys.argv[1], sys.argv[2], sys.argv[3]
    counts = [int(p) for p in points.split(",")]
    if backend == "memory":
        consumer, feed = _memory(implementation)
        sizes = asyncio.run(measure(consumer, counts, feed))
    else:
        bootstrap, topic, group = sys.argv[4:7]
        sizes = asyncio.run(measure(_kafka(implementation, bootstrap, topic, group), counts, None))
    print(json.dumps(sizes))


async def probe(*args: str) -> dict[int, float]:
    """Run this file as a fresh process with `args`; the sizes it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"memory probe {args} failed ({process.returncode})")
    return {int(k): v for k, v in json.loads(out).items()}


if __name__ == "__main__":
    main()

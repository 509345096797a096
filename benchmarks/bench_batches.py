"""Batch handlers: consume rate of a batch handler next to a single-event handler, same run,
on the memory backend and on each broker, started here on loopback (tools/brokers.py).

python benchmarks/bench_batches.py [memory redis rabbitmq kafka nats ...] [--events N]

For each backend and each handler kind, `--events` events wait in the group's queue (a
first listener joined the group and handled one event, then stopped; the events were
emitted after it); a fresh listener in that group then consumes them. The rate is events
handled divided by the time from its first message received (an instrumentation notes it)
to the last event handled, so a group join is not counted. Both handlers do
the same work per event: validate the body, count it through one injected dependency;
the batch handler gets `Batch(max_size=500, max_wait=0.05)` and `max_in_flight=2000`, the
single-event one the default `max_in_flight` (256). Kinds run in turn, `--rounds` times;
the table gives the median rate and the batch handler's as a multiple of the single one.

A second scenario, on the memory backend, gives every event one ordering key (handled in
order, as one Kafka partition is) and makes each handler call wait `--io-ms` first, as a
database round trip would: the case batch handlers are for. A third runs the first on the
memory backend with Python's garbage collector off, to show what holding events in flight
until their batch is done costs in collections.

The table is printed and written to benchmarks/batches.md. This is a benchmark, not a
test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]

from brokers import KafkaServer, NatsServer, RabbitMQServer, RedisServer  # noqa: E402
from dispytch import Batch, Dependency, Event, EventEmitter, EventListener  # noqa: E402
from dispytch.backends.memory import MemoryEventConfig  # noqa: E402
from dispytch.instrumentation import Delivery, Instrumentation  # noqa: E402
from harness import (  # noqa: E402
    COUNTER,
    BenchEvent,
    Counter,
    Payload,
    bench_events,
    counter_dependency,
)

TABLE = HERE / "batches.md"
BATCH = Batch(max_size=500, max_wait=0.05)


def _servers(stack: ExitStack) -> dict[str, Callable[[], tuple[str, dict[str, Any]]]]:
    """Backend label: how to start its broker (once) and the backend name and settings."""
    started: dict[type, Any] = {}

    def server(kind: type) -> Any:
        if kind not in started:
            started[kind] = stack.enter_context(kind())
        return started[kind]

    return {
        "memory": lambda: ("memory", {}),
        "redis": lambda: ("redis", {"url": server(RedisServer).url}),
        # A batch holds at most what the consumer hands out unacked: RabbitMQ's prefetch
        # (100 by default) is raised for both handlers, so that batches can fill.
        "rabbitmq": lambda: ("rabbitmq", {"url": server(RabbitMQServer).url, "prefetch": 1000}),
        "kafka": lambda: ("kafka", {"bootstrap_servers": server(KafkaServer).bootstrap}),
        "nats": lambda: ("nats", {"url": server(NatsServer).url}),
    }


def _listener(name: str, settings: dict[str, Any], group: str, kind: str) -> EventListener:
    options = {"max_in_flight": 2000} if kind == "batch" else {}
    return EventListener.from_backend(name, group=group, listener_options=options, **settings)


class FirstReceived(Instrumentation):
    """Notes when the measured listener received its first message."""

    def __init__(self) -> None:
        self.at: float | None = None

    def message_received(self, delivery: Delivery) -> None:
        if self.at is None:
            self.at = time.perf_counter()


def _register(listener: EventListener, topic: str, kind: str, io: float) -> None:
    """The handler of `kind`; with `io`, each call first waits that many seconds, as a
    database round trip would."""
    if kind == "batch":

        @listener.handler(topic=topic, event="bench", batch=BATCH)
        async def count_batch(
            events: list[Event[Payload]],
            counter: Annotated[Counter, Dependency(counter_dependency)],
        ) -> None:
            if io:
                await asyncio.sleep(io)
            for event in events:
                counter.hit(event.body)

    else:

        @listener.handler(topic=topic, event="bench")
        async def count_one(
            event: Event[Payload], counter: Annotated[Counter, Dependency(counter_dependency)]
        ) -> None:
            if io:
                await asyncio.sleep(io)
            counter.hit(event.body)


def _events(topic: str, n: int, key: str | None) -> list[BenchEvent]:
    events = bench_events(topic, n)
    if key is not None:  # one ordering key for all: handled in order, as one Kafka partition
        for event in events:
            event.with_backend_config(MemoryEventConfig(key=key))
    return events


async def consume(
    name: str, settings: dict[str, Any], kind: str, n: int, io: float = 0.0, key: str | None = None
) -> float:
    """Seconds a fresh listener of `kind` takes to handle `n` events waiting for its group
    (on the memory backend, all with ordering `key` when given)."""
    topic, group = f"bench.batches.{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    if name == "memory":  # a fresh in-process broker for each run
        name = f"memory://{uuid.uuid4().hex}"
    first = _listener(name, settings, group, kind)
    _register(first, topic, kind, io)
    async with EventEmitter.from_backend(name, **settings) as emitter:
        COUNTER.reset(1)
        async with first:
            await emitter.emit(bench_events(topic, 1)[0])
            await asyncio.wait_for(COUNTER.reached.wait(), 60)
        events = _events(topic, n, key)
        for start in range(0, n, 500):  # a few hundred at once: brokers confirm in time
            await asyncio.gather(*(emitter.emit(e) for e in events[start : start + 500]))
    second = _listener(name, settings, group, kind)
    _register(second, topic, kind, io)
    first = FirstReceived()
    second.add_instrumentation(first)
    COUNTER.reset(n)
    async with second:
        await asyncio.wait_for(COUNTER.reached.wait(), 300)
        assert first.at is not None
        return time.perf_counter() - first.at


async def _without_gc(measured: Awaitable[float]) -> float:
    """`measured` with Python's cyclic garbage collector off: what events held in flight
    until their batch is done cost in collections, next to the single-event handler."""
    gc.collect()
    gc.disable()
    try:
        return await measured
    finally:
        gc.enable()


async def _row(
    label: str, scenario: str, measure: Callable[[str], Any], n: int, rounds: int
) -> tuple[str, str, float, float]:
    """Median rates of the single-event and the batch handler, measured in turn."""
    runs: dict[str, list[float]] = {"single": [], "batch": []}
    for _ in range(rounds):
        for kind in runs:
            runs[kind].append(await measure(kind))
    single = n / statistics.median(runs["single"])
    batch = n / statistics.median(runs["batch"])
    print(f"{label}, {scenario}: single {single:,.0f}/s, batch {batch:,.0f}/s", flush=True)
    return label, scenario, single, batch


async def main(args: Any) -> None:
    rows = []
    io = args.io_ms / 1000
    with ExitStack() as stack:
        servers = _servers(stack)
        for label in args.backends or list(servers):
            name, settings = servers[label]()
            rows.append(
                await _row(
                    label,
                    "trivial handler",
                    lambda kind, name=name, settings=settings: consume(
                        name, settings, kind, args.events
                    ),
                    args.events,
                    args.rounds,
                )
            )
        if not args.backends or "memory" in args.backends:
            rows.append(
                await _row(
                    "memory",
                    "trivial handler, garbage collector off",
                    lambda kind: _without_gc(consume("memory", {}, kind, args.events)),
                    args.events,
                    args.rounds,
                )
            )
            rows.append(
                await _row(
                    "memory",
                    f"{args.io_ms:g} ms per call, one key",
                    lambda kind: consume("memory", {}, kind, args.io_events, io, key="one"),
                    args.io_events,
                    args.rounds,
                )
            )
    lines = [
        "# Batch handler benchmark",
        "",
        "`python benchmarks/bench_batches.py`: events waiting for a group, consumed by a fresh "
        "listener (timed from its first message received); a single-event handler next to a "
        "batch handler "
        f"(`Batch(max_size={BATCH.max_size}, max_wait={BATCH.max_wait})`), in turn, median of "
        f"{args.rounds} rounds. Trivial handler: {args.events:,} events, the handler counts "
        f"each. {args.io_ms:g} ms per call: {args.io_events:,} events of one ordering key "
        f"(handled in order, as one Kafka partition), each handler call first waits "
        f"{args.io_ms:g} ms, as a database round trip would. Brokers on loopback, same "
        "2-core machine, shared with other work: single numbers swing. Garbage collector "
        "off: the trivial handler on memory with `gc.disable()` around each run.",
        "",
        "| backend | handler | single-event handler (events/s) | batch handler (events/s) "
        "| batch / single |",
        "|---|---|---:|---:|---:|",
    ]
    for label, scenario, single, batch in rows:
        lines.append(
            f"| {label} | {scenario} | {single:,.0f} | {batch:,.0f} | {batch / single:.2f}x |"
        )
    TABLE.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("backends", nargs="*", help="memory redis rabbitmq kafka nats")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--io-ms", type=float, default=1.0, help="per call, second scenario")
    parser.add_argument("--io-events", type=int, default=2_000, help="events, second scenario")
    asyncio.run(main(parser.parse_args()))

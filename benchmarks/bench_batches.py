"""Batch handlers: consume rate of a batch handler next to a single-event handler, same run,
on the memory backend and on each broker, started here on loopback (tools/brokers.py).

python benchmarks/bench_batches.py [memory redis rabbitmq kafka nats ...] [--events N]

For each backend and each handler kind, `--events` events wait in the group's queue (a
first listener joined the group and handled one event, then stopped; the events were
emitted after it); a fresh listener in that group then consumes them. The rate is events
handled divided by the time from its start to the last event handled. Both handlers do
the same work per event: validate the body, count it through one injected dependency;
the batch handler gets `Batch(max_size=500, max_wait=0.05)` and `max_in_flight=2000`, the
single-event one the default `max_in_flight` (256). Kinds run in turn, `--rounds` times;
the table gives the median rate and the batch handler's as a multiple of the single one.

The table is printed and written to benchmarks/batches.md. This is a benchmark, not a
test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]

from brokers import KafkaServer, NatsServer, RabbitMQServer, RedisServer  # noqa: E402
from dispytch import Batch, Dependency, Event, EventEmitter, EventListener  # noqa: E402
from harness import COUNTER, Counter, Payload, bench_events, counter_dependency  # noqa: E402

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
        "rabbitmq": lambda: ("rabbitmq", {"url": server(RabbitMQServer).url}),
        "kafka": lambda: ("kafka", {"bootstrap_servers": server(KafkaServer).bootstrap}),
        "nats": lambda: ("nats", {"url": server(NatsServer).url}),
    }


def _listener(name: str, settings: dict[str, Any], group: str, kind: str) -> EventListener:
    options = {"max_in_flight": 2000} if kind == "batch" else {}
    return EventListener.from_backend(name, group=group, listener_options=options, **settings)


def _register(listener: EventListener, topic: str, kind: str) -> None:
    if kind == "batch":

        @listener.handler(topic=topic, event="bench", batch=BATCH)
        async def count_batch(
            events: list[Event[Payload]],
            counter: Annotated[Counter, Dependency(counter_dependency)],
        ) -> None:
            for event in events:
                counter.hit(event.body)

    else:

        @listener.handler(topic=topic, event="bench")
        async def count_one(
            event: Event[Payload], counter: Annotated[Counter, Dependency(counter_dependency)]
        ) -> None:
            counter.hit(event.body)


async def consume(name: str, settings: dict[str, Any], kind: str, n: int) -> float:
    """Seconds a fresh listener of `kind` takes to handle `n` events waiting for its group."""
    topic, group = f"bench.batches.{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    if name == "memory":  # a fresh in-process broker for each run
        name = f"memory://{uuid.uuid4().hex}"
    first = _listener(name, settings, group, kind)
    _register(first, topic, kind)
    async with EventEmitter.from_backend(name, **settings) as emitter:
        COUNTER.reset(1)
        async with first:
            await emitter.emit(bench_events(topic, 1)[0])
            await asyncio.wait_for(COUNTER.reached.wait(), 60)
        await asyncio.gather(*(emitter.emit(e) for e in bench_events(topic, n)))
    second = _listener(name, settings, group, kind)
    _register(second, topic, kind)
    COUNTER.reset(n)
    start = time.perf_counter()
    async with second:
        await asyncio.wait_for(COUNTER.reached.wait(), 300)
        return time.perf_counter() - start


async def main(args: Any) -> None:
    rows = []
    with ExitStack() as stack:
        servers = _servers(stack)
        for label in args.backends or list(servers):
            name, settings = servers[label]()
            runs: dict[str, list[float]] = {"single": [], "batch": []}
            for _ in range(args.rounds):
                for kind in runs:
                    runs[kind].append(await consume(name, settings, kind, args.events))
            single = args.events / statistics.median(runs["single"])
            batch = args.events / statistics.median(runs["batch"])
            rows.append((label, single, batch))
            print(f"{label}: single {single:,.0f}/s, batch {batch:,.0f}/s", flush=True)
    lines = [
        "# Batch handler benchmark",
        "",
        f"`python benchmarks/bench_batches.py`: {args.events:,} waiting events consumed by a "
        "fresh listener, single-event handler next to a batch handler "
        f"(`Batch(max_size={BATCH.max_size}, max_wait={BATCH.max_wait})`), median of "
        f"{args.rounds} rounds. Brokers on loopback, same 2-core machine, shared with other "
        "work: single numbers swing.",
        "",
        "| backend | single-event handler (events/s) | batch handler (events/s) | batch / single |",
        "|---|---:|---:|---:|",
    ]
    for label, single, batch in rows:
        lines.append(f"| {label} | {single:,.0f} | {batch:,.0f} | {batch / single:.2f}x |")
    TABLE.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("backends", nargs="*", help="memory redis rabbitmq kafka nats")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))

"""Request-reply: round-trip latency and requests per second of `emitter.request()`, on the
memory backend and on each broker, started here on loopback (tools/brokers.py).

python benchmarks/bench_request_reply.py [memory redis rabbitmq kafka nats nats-core ...]

`kafka-fetch-10ms` is Kafka with `fetch_max_wait_ms=10` (the default is 100).

For each backend one listener answers `GetQuote` with a `Quote` (validate the body, build
the reply, publish it to the caller's replies topic); one emitter asks.

- latency: `--sequential` requests one after another (after `--warmup` unmeasured ones);
  p50, p99 and max of the round trip, from the call to `request()` until it returned.
- requests/s: `--requests` requests with at most `--concurrency` in flight at once;
  requests completed divided by the wall time from the first call to the last reply.

The table is printed and written to benchmarks/request_reply.md. This is a benchmark, not a
test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent / "tools")]

from brokers import KafkaServer, NatsServer, RabbitMQServer, RedisServer  # noqa: E402
from dispytch import Event, EventBase, EventEmitter, EventListener  # noqa: E402

TABLE = HERE / "request_reply.md"


class GetQuote(EventBase):
    __topic__ = "{route}"
    __event_type__ = "bench.get_quote"

    route: str
    symbol: str
    quantity: int


class QuoteRequest(BaseModel):
    symbol: str
    quantity: int


class Quote(BaseModel):
    symbol: str
    quantity: int
    price: float


@dataclass
class Row:
    backend: str
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests_per_s: float
    concurrency: int


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
        "kafka-fetch-10ms": lambda: (
            "kafka",
            {"bootstrap_servers": server(KafkaServer).bootstrap, "fetch_max_wait_ms": 10},
        ),
        "nats": lambda: ("nats", {"url": server(NatsServer).url}),
        "nats-core": lambda: ("nats-core", {"url": server(NatsServer).url}),
    }


async def measure(label: str, name: str, settings: dict[str, Any], args: Any) -> Row:
    route = f"bench.quotes.{uuid.uuid4().hex[:8]}"
    listener = EventListener.from_backend(
        name,
        group=f"bench-{uuid.uuid4().hex[:8]}",
        listener_options={"ordered": False},
        **settings,
    )

    @listener.handler(topic=route, event=GetQuote.__event_type__)
    async def quote(event: Event[QuoteRequest]) -> Quote:
        body = event.body
        return Quote(symbol=body.symbol, quantity=body.quantity, price=1.25 * body.quantity)

    def ask(i: int) -> GetQuote:
        return GetQuote(route=route, symbol=f"S{i % 50}", quantity=i)

    async with listener, EventEmitter.from_backend(name, **settings) as emitter:
        for i in range(args.warmup):
            await emitter.request(ask(i), reply=Quote, timeout=30)
        rtts = []
        for i in range(args.sequential):
            started = time.perf_counter()
            await emitter.request(ask(i), reply=Quote, timeout=30)
            rtts.append(time.perf_counter() - started)
        room = asyncio.Semaphore(args.concurrency)

        async def one(i: int) -> None:
            async with room:
                await emitter.request(ask(i), reply=Quote, timeout=60)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(args.requests)))
        elapsed = time.perf_counter() - started
    rtts.sort()
    return Row(
        label,
        1000 * statistics.median(rtts),
        1000 * rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))],
        1000 * rtts[-1],
        args.requests / elapsed,
        args.concurrency,
    )


def _table(rows: list[Row], args: Any) -> Iterator[str]:
    yield "# Request-reply benchmark"
    yield ""
    yield (
        f"`python benchmarks/bench_request_reply.py`: round trip of {args.sequential} "
        f"sequential requests (after {args.warmup} warm-up ones), then {args.requests} "
        f"requests with {args.concurrency} in flight. Brokers on loopback, same 2-core "
        "machine, shared with other work: single numbers swing."
    )
    yield ""
    yield "| backend | p50 (ms) | p99 (ms) | max (ms) | requests/s | in flight |"
    yield "|---|---:|---:|---:|---:|---:|"
    for r in rows:
        yield (
            f"| {r.backend} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.max_ms:.2f} "
            f"| {r.requests_per_s:,.0f} | {r.concurrency} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("backends", nargs="*", help="backends to measure (default: all)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    with ExitStack() as stack:
        servers = _servers(stack)
        unknown = [b for b in args.backends if b not in servers]
        if unknown:
            parser.error(f"unknown {unknown}; backends are {list(servers)}")
        rows = []
        for label in args.backends or list(servers):
            name, settings = servers[label]()
            row = asyncio.run(measure(label, name, settings, args))
            print(row, flush=True)
            rows.append(row)
    text = "\n".join(_table(rows, args)) + "\n"
    TABLE.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

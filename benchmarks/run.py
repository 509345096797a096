"""Run the benchmark, whole or in pieces, and write the table to results.md.

python benchmarks/run.py [BROKER ...] [SCENARIO ...] [--loop uvloop] [options]

BROKER is one of the registered benchmark modules (default: all), SCENARIO one of
throughput, latency, rss (default: all). Each piece run replaces its own rows in
results.json, and results.md is written from all the rows there, so pieces run in
separate commands (`nox -s bench -- kafka latency`) add up to the full table.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]

import harness  # noqa: E402
import report  # noqa: E402

BENCHES = {
    "memory": "bench_memory",
    "kafka": "bench_kafka",
    "rabbitmq": "bench_rabbitmq",
    "redis": "bench_redis",
    "nats": "bench_nats",
    "observability": "bench_observability",
    "sqs": "bench_sqs",
}
"""Broker name on the command line: the module measuring it. A module defines any of the
SCENARIOS as async functions (see harness.py)."""

SCENARIOS = ("throughput", "latency", "rss")
RATES = (2_000, 10_000)
"""Latency rates of every module that names none of its own in `LATENCY_RATES`."""
RESULTS = HERE / "results.json"
TABLE = HERE / "results.md"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("pieces", nargs="*", help="brokers and scenarios to run (default: all)")
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput run")
    parser.add_argument("--rate", type=int, action="append", help="latency rates (2000, 10000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency: measured seconds")
    parser.add_argument("--rounds", type=int, help="latency rounds (default 5 at 2000/s, else 3)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--table", action="store_true", help="only write results.md")
    args = parser.parse_args()
    unknown = [p for p in args.pieces if p not in BENCHES and p not in SCENARIOS]
    if unknown:
        parser.error(f"unknown {unknown}: brokers are {list(BENCHES)}, scenarios {SCENARIOS}")
    brokers = [b for b in BENCHES if b in args.pieces] or list(BENCHES)
    scenarios = [s for s in SCENARIOS if s in args.pieces] or list(SCENARIOS)
    if not args.table:
        harness.LOOP = args.loop
        for broker in brokers:
            module = importlib.import_module(BENCHES[broker])
            for scenario in scenarios:
                for call in _calls(module, scenario, args):
                    print(f"benchmarking {broker} {scenario} ...", file=sys.stderr, flush=True)
                    rows = _run(call, args.loop)
                    report.store(RESULTS, scenario, rows)
                    _print(scenario, rows)
    TABLE.write_text(render())
    print(f"\nwritten to {TABLE}", file=sys.stderr)


def _calls(module: Any, scenario: str, args: argparse.Namespace) -> list[Callable[[], Any]]:
    """The calls that run `scenario` of `module`, one per piece; none if it has none."""
    if scenario == "throughput" and hasattr(module, "throughput"):
        return [lambda: module.throughput(args.events)]
    if scenario == "latency" and hasattr(module, "latency"):
        return [
            lambda rate=rate: module.latency(
                rate, args.seconds, args.rounds or (5 if rate <= 2_000 else 3)
            )
            for rate in args.rate or getattr(module, "LATENCY_RATES", RATES)
        ]
    if scenario == "rss" and hasattr(module, "rss"):
        return [module.rss]
    return []


def _run(call: Callable[[], Awaitable[Any]], loop: str) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(call())
    return asyncio.run(call())


def _print(scenario: str, rows: list[Any]) -> None:
    tables = {
        "throughput": report.throughput_table,
        "latency": report.latency_table,
        "rss": report.memory_table,
    }
    print(tables[scenario](rows), flush=True)


def render() -> str:
    """results.md: the notes, then one table per scenario, from results.json."""
    rows = report.load(RESULTS)
    return "\n".join(
        [
            (HERE / "NOTES.md").read_text().rstrip(),
            "",
            "## Throughput and time to last ack",
            "",
            report.throughput_table(rows["throughput"]),
            "",
            "## Latency at a fixed offered rate",
            "",
            report.latency_table(rows["latency"]),
            "",
            "## Resident memory of a consumer process",
            "",
            report.memory_table(rows["rss"]),
            "",
            "## When each piece was measured",
            "",
            *(f"- {line}" for line in report.runs_of(RESULTS)),
            "",
        ]
    )


if __name__ == "__main__":
    main()

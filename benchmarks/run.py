"""Run every `bench_<backend>.py` in this folder and print one table (also written to results.md).

python benchmarks/run.py [--events N] [--only memory,kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]

from harness import Row, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=20_000, help="events per scenario (default 20000)"
    )
    parser.add_argument("--only", help="comma-separated backends to run (default: all)")
    args = parser.parse_args()
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    rows: list[Row] = []
    for name in names:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench_{name}")
        rows.extend(asyncio.run(module.run(args.events)))
    result = "\n".join(
        [
            f"Benchmark, {time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}, "
            f"{args.events} events per scenario",
            "",
            table(rows),
        ]
    )
    print(result)
    if not args.only:  # a partial run leaves the full table alone
        out = HERE / "results.md"
        out.write_text(result + "\n")
        print(f"\nwritten to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

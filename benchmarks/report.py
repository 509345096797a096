"""The benchmark's results: kept in results.json, rendered into results.md.

A run of one piece (a broker and a scenario) replaces that piece's rows in results.json
and leaves the others, so pieces run in separate commands add up to the full table.
Every ratio compares rows of the same piece, measured in the same run on the same
broker and event loop: a row's rate over the hand-written loop's ("raw ..." rows) and
over FastStream's (the first "faststream ..." row of its scenario).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import LatencyRow, MemoryRow, Row

Result = Row | LatencyRow | MemoryRow


REFERENCE_PYTHON = "3.11"
"""The Python the table is measured on unless a row says otherwise; rows stored before
Pythons were told apart were all measured on it."""


def variant(row: Result) -> tuple[str, str, str]:
    """What a piece ran on besides its broker: event loop, build of dispytch-core, Python."""
    return (row.loop, row.build, row.python)


def piece(kind: str, row: Result) -> tuple[str, ...]:
    """Rows of one run of one piece share this key; a new run replaces them all."""
    if isinstance(row, LatencyRow):
        return (kind, row.backend, str(row.rate), *variant(row))
    return (kind, row.backend, *variant(row))


def store(path: Path, kind: str, rows: list[Result]) -> None:
    """Replace, in the results file at `path`, the pieces `rows` belong to (under a lock,
    so that pieces finishing at once in separate processes keep each other's rows)."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
        stamp = (
            f"{time.strftime('%Y-%m-%d %H:%M')} UTC, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end"
        )
        fresh = {piece(kind, r) for r in rows}
        kept = [s for s in saved if _key(s) not in fresh]
        added = [{"kind": kind, "when": stamp, **_encode(asdict(r))} for r in rows]
        path.write_text(json.dumps(kept + added, indent=1) + "\n")


def load(path: Path) -> dict[str, list[Any]]:
    """The rows of the results file, by kind."""
    loaded: dict[str, list[Any]] = {"throughput": [], "latency": [], "rss": []}
    saved: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    for entry in saved:
        fields = {k: v for k, v in entry.items() if k not in ("kind", "when")}
        fields.setdefault("build", _build(entry))
        fields.setdefault("python", REFERENCE_PYTHON)
        if entry["kind"] == "throughput":
            fields["runs"] = tuple(fields["runs"])
            fields["ack_runs"] = tuple(fields["ack_runs"])
            loaded["throughput"].append(Row(**fields))
        elif entry["kind"] == "latency":
            loaded["latency"].append(LatencyRow(**fields))
        else:
            fields["points"] = {int(k): v for k, v in fields["points"].items()}
            loaded["rss"].append(MemoryRow(**fields))
    return loaded


def runs_of(path: Path) -> list[str]:
    """When each piece in the results file was measured."""
    saved: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    seen: dict[tuple[str, ...], str] = {}
    for entry in saved:
        seen.setdefault(_key(entry), entry["when"])
    return [f"{' '.join(key)}: {when}" for key, when in seen.items()]


def _key(entry: dict[str, Any]) -> tuple[str, ...]:
    kind, backend = entry["kind"], entry["backend"]
    variant = (entry["loop"], _build(entry), entry.get("python", REFERENCE_PYTHON))
    if kind == "latency":
        return (kind, backend, str(entry["rate"]), *variant)
    return (kind, backend, *variant)


def _build(entry: dict[str, Any]) -> str:
    """The build a stored row measured; rows stored before builds were told apart were
    all measured on the pure-Python one."""
    build: str = entry.get("build", "pure")
    return build


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    if "points" in fields:
        fields["points"] = {str(k): v for k, v in fields["points"].items()}
    return fields


# -- tables ------------------------------------------------------------------------------------


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}"


def _name(implementation: str, row: Row | LatencyRow | MemoryRow) -> str:
    """`implementation`, marked when its piece ran on uvloop, on the pure-Python build or on
    another Python than the reference one."""
    marks = [row.loop] if row.loop != "asyncio" else []
    if row.build == "pure":
        marks.append("pure build")
    if row.python != REFERENCE_PYTHON:
        marks.append(f"Python {row.python}")
    return " · ".join((implementation, *marks))


def _variant(row: Row | LatencyRow | MemoryRow) -> tuple[bool, bool, str]:
    """Sorts the default variant (asyncio, compiled, reference Python) of a piece first."""
    return (row.loop != "asyncio", row.build != "compiled", row.python)


def throughput_table(rows: list[Row]) -> str:
    """Rates (median run, fastest run) and time-to-last-ack, each also as a ratio to the
    hand-written loop and to FastStream: above 1 is faster, for the ack column too."""
    rows = sorted(rows, key=lambda r: (r.backend, *_variant(r)))
    raw: dict[tuple[str, ...], Row] = {}
    faststream: dict[tuple[str, ...], Row] = {}
    for r in rows:
        key = (r.backend, r.scenario, *variant(r))
        if r.implementation.startswith("raw"):
            raw.setdefault(key, r)
        elif r.implementation.startswith("faststream"):
            faststream.setdefault(key, r)
    lines = [
        "| backend | scenario | implementation | events | events/s (median) | vs raw "
        "| vs FastStream | events/s (best) | vs raw (best) | time to last ack, s (median) "
        "| ack vs raw | ack vs FastStream |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        key = (r.backend, r.scenario, *variant(r))
        ref, fs = raw.get(key), faststream.get(key)
        ack = None if r.unacked else r.median_ack
        acked = f"not all acked ({r.unacked} left)" if r.unacked else _seconds(ack)
        lines.append(
            f"| {r.backend} | {r.scenario} | {_name(r.implementation, r)} | {r.events} "
            f"| {r.median_rate:,.0f} | {_ratio(r.median_rate, ref.median_rate if ref else None)} "
            f"| {_ratio(r.median_rate, fs.median_rate if fs else None)} "
            f"| {r.rate:,.0f} | {_ratio(r.rate, ref.rate if ref else None)} "
            f"| {acked} | {_inverse(ack, _acked(ref))} | {_inverse(ack, _acked(fs))} |"
        )
    return "\n".join(lines)


def _seconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def _acked(row: Row | None) -> float | None:
    """The median time to the last ack of `row`, if it has one and every event was acked."""
    return None if row is None or row.unacked else row.median_ack


def _inverse(seconds: float | None, reference: float | None) -> str:
    """How many times faster than `reference` a duration of `seconds` is."""
    if seconds is None or reference is None or not seconds:
        return "-"
    return f"{reference / seconds:.2f}"


def latency_table(rows: list[LatencyRow]) -> str:
    """Medians over rounds of each percentile; the target column checks p50 <= 1.1 x and
    p99 <= 1.2 x + 1 ms of the hand-written loop's."""
    rows = sorted(rows, key=lambda r: (r.backend, r.rate, *_variant(r)))
    raw: dict[tuple[str | int, ...], LatencyRow] = {}
    faststream: dict[tuple[str | int, ...], LatencyRow] = {}
    for r in rows:
        key = (r.backend, r.rate, *variant(r))
        if r.implementation.startswith("raw"):
            raw.setdefault(key, r)
        elif r.implementation.startswith("faststream"):
            faststream.setdefault(key, r)
    lines = [
        "| backend | events/s | implementation | rounds | p50 ms | p99 ms | p99.9 ms | max ms "
        "| all arrived | p50 vs raw | p99 vs raw | p50 vs FastStream | p99 vs FastStream "
        "| target (p50 <= 1.1x, p99 <= 1.2x + 1 ms) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        key = (r.backend, r.rate, *variant(r))
        ref, fs = raw.get(key), faststream.get(key)
        p50, p99 = r.median("p50"), r.median("p99")
        target = "-"
        if ref is not None and r is not ref:
            met = (
                r.all_arrived
                and p50 <= 1.1 * ref.median("p50")
                and p99 <= 1.2 * ref.median("p99") + 1.0
            )
            target = "met" if met else "missed"
        arrived = "yes" if r.all_arrived else _arrivals(r)
        worst = max(x["max"] for x in r.rounds)
        lines.append(
            f"| {r.backend} | {r.rate:,} | {_name(r.implementation, r)} | {len(r.rounds)} "
            f"| {p50:.2f} | {p99:.2f} | {r.median('p999'):.2f} | {worst:.1f} "
            f"| {arrived} | {_ratio(p50, ref.median('p50') if ref else None)} "
            f"| {_ratio(p99, ref.median('p99') if ref else None)} "
            f"| {_ratio(p50, fs.median('p50') if fs else None)} "
            f"| {_ratio(p99, fs.median('p99') if fs else None)} "
            f"| {target} |"
        )
    return "\n".join(lines)


def _arrivals(row: LatencyRow) -> str:
    return "no: " + ", ".join(f"{int(r['arrived'])}/{int(r['sent'])}" for r in row.rounds)


def memory_table(rows: list[MemoryRow]) -> str:
    """Resident MiB after each count of events, and the growth from 100k to the last."""
    rows = sorted(rows, key=lambda r: (r.backend, *_variant(r)))
    counts = sorted({count for r in rows for count in r.points})
    lines = [
        "| backend | implementation | "
        + " | ".join(f"{c:,} events" for c in counts)
        + " | growth from 100,000 |",
        "|---|---|" + "---:|" * len(counts) + "---:|",
    ]
    for r in rows:
        cells = [f"{r.points[c]:.1f}" if c in r.points else "" for c in counts]
        last = r.points[max(r.points)]
        base = r.points.get(100_000)
        growth = f"{(last - base) / base:+.1%}" if base else "-"
        lines.append(
            f"| {r.backend} | {_name(r.implementation, r)} | {' | '.join(cells)} | {growth} |"
        )
    return "\n".join(lines)

"""`dispytch backends`: the installed backends, their distributions and capabilities."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dispytch.backends.registry import registry


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("backends", help="list installed backends and their capabilities")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(command=cmd_backends)


def cmd_backends(args: argparse.Namespace) -> int:
    found = registry()
    rows = [
        {
            "name": b.name,
            "distribution": b.distribution or "?",
            "version": b.version or "?",
            "schemes": list(b.schemes),
            "capabilities": b.capabilities.offered(),
        }
        for b in sorted(found, key=lambda b: b.name)
    ]
    problems = [str(f) for f in found.failures] + [
        f"name {name!r} claimed by {' and '.join(b.distribution or '?' for b in claims)}"
        for name, claims in found.conflicts.items()
    ]
    if args.json:
        print(json.dumps({"backends": rows, "problems": problems}, indent=2))
        return 0
    headers = ("name", "distribution", "version", "schemes", "capabilities")
    table = [headers] + [
        (
            r["name"],
            r["distribution"],
            r["version"],
            ",".join(r["schemes"]),
            ", ".join(r["capabilities"]),
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    for row in table:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0

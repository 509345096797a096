"""`dispytch probe URL`: exit 0 when the backend answers, 1 with the reason when it does
not, within a timeout; for exec probes and deployment scripts."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from dispytch.backends.selection import select_backend
from dispytch.backends.settings import redact_url
from dispytch.cli.errors import CommandError
from dispytch.health import SupportsPing
from dispytch.lifecycle import start_if_possible, stop_if_possible


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("probe", help="check that a backend answers (exit 0) or not (1)")
    parser.add_argument("url", nargs="?", help="backend URL or name (default: $DISPYTCH_BACKEND)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)"
    )
    parser.set_defaults(command=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    spec = args.url or os.environ.get("DISPYTCH_BACKEND")
    if not spec:
        raise CommandError("no backend: pass a URL or set DISPYTCH_BACKEND")
    backend, settings = select_backend(spec)
    producer = backend.create_producer(settings)
    if not isinstance(producer, SupportsPing):
        raise CommandError(f"backend {backend.name!r} cannot be probed: its producer has no ping()")
    try:
        asyncio.run(asyncio.wait_for(_ping(producer), args.timeout))
    except asyncio.TimeoutError:
        print(f"{redact_url(spec)}: no answer within {args.timeout}s", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"{redact_url(spec)}: unreachable: {exc!r}", file=sys.stderr)
        return 1
    print(f"{redact_url(spec)}: ok")
    return 0


async def _ping(producer: SupportsPing) -> None:
    try:
        await start_if_possible(producer)
        await producer.ping()
    finally:
        await stop_if_possible(producer)

"""`dispytch emit`: publish one event given as JSON, for operators."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from pydantic import ConfigDict

from dispytch.backends.settings import redact_url
from dispytch.cli.errors import CommandError
from dispytch.emitter.emitter import EventEmitter
from dispytch.emitter.producer import ProducerTimeout
from dispytch.event import EventBase
from dispytch.middleware import EmitContext


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("emit", help="publish one event given as JSON")
    parser.add_argument("--backend", help="backend name or URL (default: $DISPYTCH_BACKEND)")
    parser.add_argument("--topic", required=True, help="topic to publish to")
    parser.add_argument("--type", required=True, dest="event_type", help="event type")
    parser.add_argument("--body", default="{}", help="event body as a JSON object, or - for stdin")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a message header (repeatable)",
    )
    parser.set_defaults(command=cmd_emit)


def cmd_emit(args: argparse.Namespace) -> int:
    backend = args.backend or os.environ.get("DISPYTCH_BACKEND")
    if not backend:
        raise CommandError("no backend: pass --backend or set DISPYTCH_BACKEND")
    raw = sys.stdin.read() if args.body == "-" else args.body
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CommandError("--body must be a JSON object")
    headers = dict(_header(h) for h in args.header)
    event = _operator_event(args.topic, args.event_type)(**body)
    try:
        asyncio.run(_emit(backend, event, headers))
    except (OSError, TimeoutError, ProducerTimeout) as exc:
        raise CommandError(f"could not emit to {redact_url(backend)}: {exc}") from None
    print(f"emitted {args.event_type} to {args.topic} via {redact_url(backend)}")
    return 0


def _operator_event(topic: str, event_type: str) -> type[EventBase]:
    class OperatorEvent(EventBase):
        model_config = ConfigDict(extra="allow")
        __topic__ = topic.replace("{", "{{").replace("}", "}}")
        __event_type__ = event_type

    return OperatorEvent


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise CommandError(f"--header must be NAME=VALUE, got {text!r}")
    return name, value


async def _emit(backend: str, event: EventBase, headers: dict[str, str]) -> None:
    async def add_headers(ctx: EmitContext, call_next: Any) -> None:
        ctx.message.headers.update(headers)
        await call_next(ctx)

    emitter = EventEmitter.from_backend(
        backend, emitter_options={"middleware": [add_headers], "raise_on_timeout": True}
    )
    async with emitter:
        await emitter.emit(event)

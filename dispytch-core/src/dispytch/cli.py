"""The `dispytch` command: list backends, run a listener app, emit an event, write an app's
AsyncAPI document, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ConfigDict

from dispytch.backends.registry import BackendError, registry
from dispytch.backends.requirements import CapabilityError
from dispytch.backends.selection import BackendSettingsError
from dispytch.backends.settings import redact_url
from dispytch.di import DependencyError
from dispytch.emitter.emitter import EventEmitter
from dispytch.emitter.producer import ProducerTimeout
from dispytch.event import EventBase
from dispytch.listener.group import HandlerGroup
from dispytch.listener.listener import EventListener
from dispytch.middleware import EmitContext


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.command(args)
    except (
        CommandError,
        BackendError,
        BackendSettingsError,
        CapabilityError,
        DependencyError,
    ) as exc:
        print(f"dispytch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispytch", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    backends = commands.add_parser(
        "backends", help="list installed backends and their capabilities"
    )
    backends.add_argument("--json", action="store_true", help="print JSON instead of a table")
    backends.set_defaults(command=cmd_backends)

    run = commands.add_parser("run", help="run a listener app until SIGINT/SIGTERM")
    run.add_argument("app", help="module:attr naming an EventListener or a HandlerGroup")
    run.add_argument("--backend", help="backend name or URL (default: $DISPYTCH_BACKEND)")
    run.add_argument("--group", help="consumer group (default: $DISPYTCH_GROUP)")
    run.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        help="seconds in-flight handlers get to finish on stop (default 30)",
    )
    run.set_defaults(command=cmd_run)

    emit = commands.add_parser("emit", help="publish one event given as JSON")
    emit.add_argument("--backend", help="backend name or URL (default: $DISPYTCH_BACKEND)")
    emit.add_argument("--topic", required=True, help="topic to publish to")
    emit.add_argument("--type", required=True, dest="event_type", help="event type")
    emit.add_argument("--body", default="{}", help="event body as a JSON object, or - for stdin")
    emit.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a message header (repeatable)",
    )
    emit.set_defaults(command=cmd_emit)

    docs = commands.add_parser("docs", help="documents built from an app's code")
    docs_commands = docs.add_subparsers(required=True, metavar="DOCS_COMMAND")
    gen = docs_commands.add_parser("gen", help="write the app's AsyncAPI 3.0 document")
    gen.add_argument(
        "app", help="module:attr naming an App, an EventListener, a HandlerGroup or an emitter"
    )
    gen.add_argument(
        "-o", "--output", help="file to write; .json for JSON, else YAML (default: stdout, YAML)"
    )
    gen.add_argument(
        "--emits",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="an event class the app emits, besides an App's own (repeatable)",
    )
    gen.add_argument("--title", help="the document's title (default: the app's, or its name)")
    gen.add_argument("--app-version", help="the app's version (default: the app's, or 0.0.0)")
    gen.set_defaults(command=cmd_docs_gen)

    demo = commands.add_parser("demo", help="run the demo on the memory backend")
    demo.set_defaults(command=cmd_demo)
    return parser


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


def cmd_run(args: argparse.Namespace) -> int:
    listener = _listener_for(_import(args.app), args.backend, args.group)
    asyncio.run(_run_until_signalled(listener, args.stop_timeout))
    return 0


async def _run_until_signalled(listener: EventListener, stop_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop() -> None:
        if not stopping:
            print("dispytch: stopping; finishing in-flight events ...", file=sys.stderr)
            stopping.append(loop.create_task(listener.stop(timeout=stop_timeout)))

    async def announce() -> None:
        await listener.wait_ready()
        where = listener.backend.name if listener.backend else type(listener.consumer).__name__
        topics = ", ".join(str(p) for p in listener.subscription.patterns)
        print(
            f"dispytch: listening on {where} as group {listener.group!r} to {topics}",
            file=sys.stderr,
            flush=True,
        )

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    ready = loop.create_task(announce())
    try:
        await listener.listen()
    finally:
        ready.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if stopping:
            await stopping[0]


def _listener_for(app: Any, backend: str | None, group: str | None) -> EventListener:
    backend = backend or os.environ.get("DISPYTCH_BACKEND")
    group = group or os.environ.get("DISPYTCH_GROUP")
    if isinstance(app, EventListener) and app.backend is None and app.consumer is None:
        if not backend or not group:
            raise CommandError("the listener has no backend: pass --backend and --group")
        return app.use_backend(backend, group=group)
    if isinstance(app, EventListener):
        if backend:
            raise CommandError("the listener already has a backend; drop --backend")
        return app
    if isinstance(app, HandlerGroup):
        if not backend or not group:
            raise CommandError("running a HandlerGroup needs --backend and --group")
        listener = EventListener.from_backend(backend, group=group)
        listener.add_handler_group(app)
        return listener
    raise CommandError(f"expected an EventListener or a HandlerGroup, got {type(app).__name__}")


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise CommandError(f"app must look like module:attr, got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise CommandError(f"module {module_name!r} has no attribute {attr!r}") from None


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


def cmd_docs_gen(args: argparse.Namespace) -> int:
    from dispytch.asyncapi import asyncapi_document, to_yaml

    target = _import(args.app)
    emits = [_import(name) for name in args.emits]
    for event_class in emits:
        if not (isinstance(event_class, type) and issubclass(event_class, EventBase)):
            raise CommandError(f"--emits must name an EventBase subclass, got {event_class!r}")
    listeners: list[EventListener] = []
    emitters: list[EventEmitter] = []
    app = None
    for item in target if isinstance(target, list | tuple) else [target]:
        if isinstance(item, EventListener):
            listeners.append(item)
        elif isinstance(item, HandlerGroup):
            listener = EventListener()
            listener.add_handler_group(item)
            listeners.append(listener)
        elif isinstance(item, EventEmitter):
            emitters.append(item)
        elif hasattr(item, "listeners") or hasattr(item, "emits"):
            app = item
        else:
            raise CommandError(
                f"{args.app} is a {type(item).__name__}: expected an App, an EventListener, "
                "a HandlerGroup, an EventEmitter or a list of them"
            )
    try:
        document = asyncapi_document(
            app,
            listeners=listeners,
            emitters=emitters,
            emits=emits,
            title=args.title or getattr(app, "title", None) or args.app,
            version=args.app_version,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    as_json = bool(args.output) and args.output.endswith(".json")
    text = json.dumps(document, indent=2) + "\n" if as_json else to_yaml(document)
    if not args.output:
        sys.stdout.write(text)
        return 0
    with open(args.output, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"wrote the AsyncAPI document of {args.app} to {args.output}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dispytch.demo import main as demo

    asyncio.run(demo())
    return 0


if __name__ == "__main__":
    sys.exit(main())

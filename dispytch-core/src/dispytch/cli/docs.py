"""`dispytch docs ...`: documents built from an app's code. `docs gen` writes its AsyncAPI
3.0 document."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dispytch.cli.errors import CommandError
from dispytch.cli.target import import_object
from dispytch.emitter.emitter import EventEmitter
from dispytch.event import EventBase
from dispytch.listener.group import HandlerGroup
from dispytch.listener.listener import EventListener


def add_parser(commands: Any) -> None:
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
    gen.add_argument("--factory", action="store_true", help="call app for it")
    gen.add_argument("--title", help="the document's title (default: the app's, or its name)")
    gen.add_argument("--app-version", help="the app's version (default: the app's, or 0.0.0)")
    gen.set_defaults(command=cmd_docs_gen)


def cmd_docs_gen(args: argparse.Namespace) -> int:
    from dispytch.asyncapi import asyncapi_document, to_yaml

    target = import_object(args.app)
    if args.factory:
        if not callable(target):
            raise CommandError(
                f"--factory: {args.app} is a {type(target).__name__}, not a callable"
            )
        target = target()
    emits = [import_object(name) for name in args.emits]
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

"""`dispytch demo`: the demo on the memory backend."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("demo", help="run the demo on the memory backend")
    parser.set_defaults(command=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from dispytch.demo import main as demo

    asyncio.run(demo())
    return 0

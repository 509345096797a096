"""The `dispytch` command: run a service, probe a backend, list backends, emit an event,
write an app's AsyncAPI document, run the demo. Each command is one module of this package
with an `add_parser` function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dispytch.backends.registry import BackendError
from dispytch.backends.requirements import CapabilityError
from dispytch.backends.selection import BackendSettingsError
from dispytch.cli import backends, demo, docs, emit, probe, run
from dispytch.cli.errors import CommandError
from dispytch.di import DependencyError

COMMANDS = (run, probe, backends, emit, docs, demo)
"""The command modules, in the order `dispytch --help` lists them. A command group (such
as `dispytch docs ...`) is a module whose `add_parser` adds its own subcommands."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `dispytch` command line; return the exit code."""
    args = parser().parse_args(argv)
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


def parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    root = argparse.ArgumentParser(prog="dispytch", description=__doc__)
    commands = root.add_subparsers(required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return root

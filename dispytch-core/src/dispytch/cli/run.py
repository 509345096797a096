"""`dispytch run`: serve an App (or a listener, or a handler group) until SIGTERM/SIGINT,
in this process, in `--workers` processes, or restarted on code changes with `--reload`.

Every option has an environment variable, read when the option is not given:
`DISPYTCH_APP`, `DISPYTCH_BACKEND`, `DISPYTCH_GROUP`, `DISPYTCH_FACTORY`, `DISPYTCH_WORKERS`,
`DISPYTCH_RELOAD`, `DISPYTCH_LOG_LEVEL`, `DISPYTCH_LOG_FORMAT`, `DISPYTCH_STOP_TIMEOUT`,
`DISPYTCH_HEALTH_HOST`, `DISPYTCH_HEALTH_PORT`, `DISPYTCH_STALE_AFTER`, `DISPYTCH_LOOP`.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from dispytch.cli.errors import CommandError
from dispytch.cli.options import run_options
from dispytch.cli.reload import run_with_reload
from dispytch.cli.supervisor import supervise
from dispytch.cli.worker import run_worker


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="serve an app until SIGINT/SIGTERM",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "app", nargs="?", help="module:attr naming an App, an EventListener or a HandlerGroup"
    )
    parser.add_argument("--factory", action="store_true", default=None, help="call app for it")
    parser.add_argument("--backend", help="backend name or URL, for a listener without one")
    parser.add_argument("--group", help="consumer group, for a listener without a backend")
    parser.add_argument("--workers", type=int, help="worker processes, in one group (default 1)")
    parser.add_argument(
        "--reload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="restart the worker when a .py file changes (needs watchfiles; development only)",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING (default) or ERROR")
    parser.add_argument("--log-format", choices=["text", "json"], help="default text")
    parser.add_argument(
        "--stop-timeout",
        type=float,
        help="seconds in-flight handlers get to finish on stop (default 30)",
    )
    parser.add_argument("--health-host", help="address of the health endpoint (default 0.0.0.0)")
    parser.add_argument(
        "--health-port", type=int, help="serve /livez, /readyz and /metrics on this port"
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        help="seconds without a poll after which /readyz fails (stuck handlers; default 60)",
    )
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], help="event loop (default asyncio)"
    )
    parser.set_defaults(command=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    options = run_options(args, os.environ)
    if options.reload:
        if options.workers != 1:
            raise CommandError("--reload runs one worker; drop --workers")
        return run_with_reload(options)
    if options.workers > 1:
        return supervise(options)
    return run_worker(options)

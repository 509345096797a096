"""One worker: the app served in this process until SIGTERM/SIGINT, with the health
endpoint when asked for."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from dispytch.app import App
from dispytch.cli import event_loop
from dispytch.cli.console import configure_output, say
from dispytch.cli.health_server import HealthServer
from dispytch.cli.options import RunOptions
from dispytch.cli.target import app_to_run

logger = logging.getLogger("dispytch.cli")

_ORPHAN_CHECK_INTERVAL = 1.0
"""Seconds between checks that the supervisor still runs."""


def run_worker(options: RunOptions) -> int:
    """Serve the app until a signal stops it (exit code 0) or a listener fails (1)."""
    configure_output(options.log_level, options.log_format)
    app = app_to_run(options)
    try:
        event_loop.run(serve(app, options), options.loop)
    except Exception as exc:
        logger.exception("the app stopped: %r", exc)
        say(f"the app stopped: {exc!r}")
        return 1
    return 0


async def serve(app: App, options: RunOptions) -> None:
    """Start `app` (and the health endpoint), run it until SIGTERM/SIGINT, stop it."""
    loop = asyncio.get_running_loop()
    starting: asyncio.Future[None] | None = None

    def stop() -> None:
        if not app.stop_requested:
            say("stopping; finishing in-flight events ...")
            app.request_stop()
        if starting is not None and not starting.done():
            starting.cancel()  # a start waiting on an unreachable broker gives up

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    health = None
    try:
        if options.health_port is not None:
            health = HealthServer(live=_alive, ready=lambda: _ready(app, options.stale_after))
            port = await health.start(options.health_host, options.health_port)
            say(f"health on {options.health_host}:{port}")
        starting = asyncio.ensure_future(app.start())
        try:
            await starting
        except asyncio.CancelledError:
            if not app.stop_requested:
                raise
            return
        _announce(app)
        orphaned = asyncio.ensure_future(_stop_when_orphaned(stop))
        try:
            await app.serve()
        finally:
            orphaned.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if health is not None:
            await health.stop()


async def _stop_when_orphaned(stop: Callable[[], None]) -> None:
    """Under a supervisor (`DISPYTCH_SUPERVISOR_PID`), stop when it is gone (killed
    without a chance to stop its workers), rather than run on unsupervised."""
    supervisor = os.environ.get("DISPYTCH_SUPERVISOR_PID")
    if not supervisor:
        return
    while os.getppid() == int(supervisor):  # noqa: ASYNC110 - polls the OS, not an event
        await asyncio.sleep(_ORPHAN_CHECK_INTERVAL)
    say(f"the supervisor (pid {supervisor}) is gone")
    stop()


async def _alive() -> tuple[bool, str]:
    return True, "alive"  # the event loop answered; a stuck or dead app ends the process


async def _ready(app: App, stale_after: float) -> tuple[bool, str]:
    health = await app.health(stale_after=stale_after)
    if health.ready:
        return True, f"ready: {len(health.listeners)} listeners, {health.in_flight} in flight"
    return False, f"not ready: {health.reason}"


def _announce(app: App) -> None:
    for listener in app.listeners:
        where = listener.backend.name if listener.backend else type(listener.consumer).__name__
        topics = ", ".join(str(p) for p in listener.subscription.patterns)
        say(f"listening on {where} as group {listener.group!r} to {topics}")

"""`dispytch run --reload`: one worker, restarted once for each batch of changed `.py`
files under the current directory. For development; needs watchfiles
(`pip install 'dispytch-core[reload]'`), imported only here."""

from __future__ import annotations

import asyncio
import os
import signal

from dispytch.cli.console import configure_output, say
from dispytch.cli.errors import CommandError
from dispytch.cli.options import RunOptions
from dispytch.cli.worker_process import WorkerProcess


def run_with_reload(options: RunOptions) -> int:
    """Run one worker and restart it on code changes until SIGTERM/SIGINT."""
    try:
        import watchfiles  # noqa: F401 - checked before anything starts
    except ImportError:
        raise CommandError(
            "--reload needs watchfiles: pip install 'dispytch-core[reload]'"
        ) from None
    configure_output(options.log_level, options.log_format)
    return asyncio.run(_reload_loop(options))


async def _reload_loop(options: RunOptions) -> int:
    from watchfiles import PythonFilter, awatch

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPYTCH_RELOAD", "DISPYTCH_WORKERS")}
    env["DISPYTCH_SUPERVISOR_PID"] = str(os.getpid())
    argv = options.worker_argv(None)
    if options.health_port is not None:
        argv += ["--health-host", options.health_host, "--health-port", str(options.health_port)]
    grace = options.stop_timeout + 5.0
    root = os.getcwd()
    say(f"watching {root} for changes to .py files")
    worker = await WorkerProcess.start(argv, env)
    try:
        async for changes in awatch(root, watch_filter=PythonFilter(), stop_event=stop):
            names = sorted({path.removeprefix(root + os.sep) for _, path in changes})
            say(f"{', '.join(names)} changed; restarting the worker")
            await worker.terminate(grace)
            worker = await WorkerProcess.start(argv, env)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        code = await worker.terminate(grace)
    return 0 if code in (0, -signal.SIGTERM) else 1

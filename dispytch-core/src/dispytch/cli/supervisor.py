"""`dispytch run --workers N`: N worker processes in one consumer group, supervised.

The supervisor forwards SIGTERM/SIGINT to every worker and waits for them to drain
(`--stop-timeout`, then SIGKILL), restarts a worker that died unexpectedly after a
backoff, and gives up (stopping the others, exit code 1) when workers keep crashing.
With `--health-port` it serves `/readyz` (every worker ready) and `/livez` itself, each
worker answering on a loopback port of its own; `/metrics` aggregates the workers
through `PROMETHEUS_MULTIPROC_DIR` when prometheus-client is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass

from dispytch.cli.console import configure_output, say
from dispytch.cli.health_server import HealthServer
from dispytch.cli.options import RunOptions
from dispytch.cli.target import app_to_run
from dispytch.cli.worker_process import WorkerProcess

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
"""Seconds before restarting a crashed worker: doubling from the first to the most."""
STEADY_AFTER = 30.0
"""A worker that ran this long before it died starts over at the first backoff."""
MAX_QUICK_CRASHES = 5
"""Crashes in a row, each before `STEADY_AFTER`, after which the supervisor gives up."""
_CHILD_STATUS_TIMEOUT = 2.0


def supervise(options: RunOptions) -> int:
    """Run `options.workers` workers until a signal (exit code 0 when every worker
    drained cleanly) or until they keep crashing (exit code 1)."""
    configure_output(options.log_level, options.log_format)
    env = dict(os.environ)
    for variable in ("DISPYTCH_WORKERS", "DISPYTCH_RELOAD", "DISPYTCH_HEALTH_PORT"):
        env.pop(variable, None)
    metrics_dir = None
    if "PROMETHEUS_MULTIPROC_DIR" not in env and importlib.util.find_spec("prometheus_client"):
        metrics_dir = tempfile.mkdtemp(prefix="dispytch-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        # Import the app here once, so that a typo fails at once instead of in every worker.
        app_to_run(options)
        return asyncio.run(Supervisor(options, env).run())
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@dataclass
class _Slot:
    """One worker position: its current process and its crash history."""

    index: int
    backoff: float
    process: WorkerProcess | None = None
    health_port: int | None = None
    quick_crashes: int = 0


class Supervisor:
    """Keeps `options.workers` worker processes running until told to stop."""

    def __init__(
        self, options: RunOptions, env: dict[str, str], first_backoff: float = BACKOFF_FIRST
    ) -> None:
        self.options = options
        self.env = env
        self.first_backoff = first_backoff
        self.slots = [_Slot(i, first_backoff) for i in range(options.workers)]
        self._stopping = False
        self._gave_up = False
        self._done = asyncio.Event()
        self._watchers: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop)
        health = None
        if self.options.health_port is not None:
            health = HealthServer(live=self._alive, ready=self._ready)
            port = await health.start(self.options.health_host, self.options.health_port)
            say(f"health on {self.options.health_host}:{port}")
        try:
            for slot in self.slots:
                await self._spawn(slot)
            await self._done.wait()
            clean = await self._stop_all()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if health is not None:
                await health.stop()
        return 1 if self._gave_up or not clean else 0

    def _stop(self) -> None:
        if not self._stopping:
            say(f"stopping {len(self.slots)} workers; finishing in-flight events ...")
        self._stopping = True
        self._done.set()

    async def _spawn(self, slot: _Slot) -> None:
        slot.health_port = _free_port() if self.options.health_port is not None else None
        argv = self.options.worker_argv(slot.health_port)
        env = {
            **self.env,
            "DISPYTCH_WORKER_INDEX": str(slot.index),
            "DISPYTCH_SUPERVISOR_PID": str(os.getpid()),
        }
        slot.process = process = await WorkerProcess.start(argv, env)
        say(f"worker {slot.index} started (pid {process.pid})")
        watcher = asyncio.create_task(self._watch(slot, process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, slot: _Slot, process: WorkerProcess) -> None:
        code = await process.wait()
        _drop_metrics_of(process.pid)
        if self._stopping:
            return
        uptime = process.uptime()
        say(f"worker {slot.index} (pid {process.pid}) exited with code {code} after {uptime:.1f}s")
        if uptime >= STEADY_AFTER:
            slot.quick_crashes, slot.backoff = 0, self.first_backoff
        slot.quick_crashes += 1
        if slot.quick_crashes >= MAX_QUICK_CRASHES:
            say(
                f"worker {slot.index} crashed {MAX_QUICK_CRASHES} times in a row "
                "soon after starting; giving up"
            )
            self._gave_up = self._stopping = True
            self._done.set()
            return
        delay, slot.backoff = slot.backoff, min(slot.backoff * 2, BACKOFF_MAX)
        say(f"restarting worker {slot.index} in {delay:.1f}s")
        await asyncio.sleep(delay)
        if not self._stopping:
            await self._spawn(slot)

    async def _stop_all(self) -> bool:
        """SIGTERM every worker, SIGKILL what is left after the stop timeout; True when
        every worker exited with code 0."""
        for watcher in self._watchers:
            watcher.cancel()  # no restarts from here on
        processes = [s.process for s in self.slots if s.process is not None and s.process.running]
        grace = self.options.stop_timeout + 5.0
        codes = await asyncio.gather(*(p.terminate(grace) for p in processes))
        return all(code == 0 for code in codes)

    async def _alive(self) -> tuple[bool, str]:
        if self._gave_up:
            return False, "workers keep crashing"
        return True, "alive"

    async def _ready(self) -> tuple[bool, str]:
        if self._stopping:
            return False, "stopping"
        answers = await asyncio.gather(*(_worker_ready(slot) for slot in self.slots))
        waiting = [
            f"worker {slot.index}" for slot, ok in zip(self.slots, answers, strict=True) if not ok
        ]
        if waiting:
            return False, f"not ready: {', '.join(waiting)}"
        return True, f"ready: {len(self.slots)} workers"


async def _worker_ready(slot: _Slot) -> bool:
    """Whether the worker's own `/readyz` answers 200."""
    if slot.process is None or slot.health_port is None or not slot.process.running:
        return False
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", slot.health_port), _CHILD_STATUS_TIMEOUT
        )
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: worker\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), _CHILD_STATUS_TIMEOUT)
        return status.split(b" ")[1:2] == [b"200"]
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


def _drop_metrics_of(pid: int) -> None:
    """In Prometheus multiprocess mode, drop the gauges of the exited worker `pid`."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from dispytch.prometheus import mark_worker_dead

        mark_worker_dead(pid)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

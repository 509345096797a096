"""A worker process: `python -m dispytch.cli run ...` as a child, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping, Sequence

from dispytch.cli.console import say


class WorkerProcess:
    """A running `dispytch run` child sharing this process's stdout and stderr."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = process.pid
        self.started = time.monotonic()

    @classmethod
    async def start(cls, argv: Sequence[str], env: Mapping[str, str]) -> WorkerProcess:
        """Start `dispytch run argv...` with environment `env`."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dispytch.cli", "run", *argv, env=dict(env)
        )
        return cls(process)

    @property
    def running(self) -> bool:
        """True until the process exited."""
        return self.process.returncode is None

    def uptime(self) -> float:
        """Seconds since the process started."""
        return time.monotonic() - self.started

    async def wait(self) -> int:
        """Wait for the process to exit; its exit code (negative: killed by that signal)."""
        return await self.process.wait()

    async def terminate(self, grace: float) -> int:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                return await asyncio.wait_for(self.process.wait(), grace)
            except asyncio.TimeoutError:
                say(f"worker pid {self.pid} did not stop within {grace:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
        return await self.process.wait()

"""What `dispytch run` is asked to do: its options, each falling back to a `DISPYTCH_*`
environment variable, then to a default."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

from dispytch.cli.errors import CommandError
from dispytch.logging import LogFormat

LoopName = Literal["asyncio", "uvloop"]
T = TypeVar("T")
ENV = "DISPYTCH_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class RunOptions:
    """What `dispytch run` was asked to do, from options and environment variables."""

    app: str
    factory: bool = False
    backend: str | None = None
    group: str | None = None
    workers: int = 1
    reload: bool = False
    log_level: str = "WARNING"
    log_format: LogFormat = "text"
    stop_timeout: float = 30.0
    health_host: str = "0.0.0.0"
    health_port: int | None = None
    stale_after: float = 60.0
    loop: LoopName = "asyncio"

    def worker_argv(self, health_port: int | None) -> list[str]:
        """The `dispytch run` arguments of one worker process serving on `health_port`."""
        argv = [self.app, "--workers", "1", "--no-reload"]
        argv += ["--log-level", self.log_level, "--log-format", self.log_format]
        argv += ["--stop-timeout", str(self.stop_timeout), "--loop", self.loop]
        argv += ["--stale-after", str(self.stale_after)]
        if self.factory:
            argv.append("--factory")
        if self.backend:
            argv += ["--backend", self.backend]
        if self.group:
            argv += ["--group", self.group]
        if health_port is not None:
            argv += ["--health-host", "127.0.0.1", "--health-port", str(health_port)]
        return argv


def run_options(args: argparse.Namespace, environ: Mapping[str, str]) -> RunOptions:
    """Options given on the command line, else from `DISPYTCH_*` variables, else defaults."""

    def pick(name: str, convert: Callable[[str], T], default: T) -> T:
        given = getattr(args, name)
        if given is not None:
            return cast(T, given)
        variable = f"{ENV}{name.upper()}"
        raw = environ.get(variable)
        if raw is None or (raw == "" and convert is not _flag):
            return default
        try:
            return convert(raw)
        except ValueError as exc:
            raise CommandError(f"${variable}={raw!r} is invalid: {exc}") from None

    app = pick("app", str, "")
    if not app:
        raise CommandError("no app: pass module:attr, or set DISPYTCH_APP")
    options = RunOptions(
        app=app,
        factory=pick("factory", _flag, False),
        backend=pick("backend", str, None),
        group=pick("group", str, None),
        workers=pick("workers", int, 1),
        reload=pick("reload", _flag, False),
        log_level=pick("log_level", str, "WARNING").upper(),
        log_format=cast(LogFormat, pick("log_format", _choice("text", "json"), "text")),
        stop_timeout=pick("stop_timeout", float, 30.0),
        health_host=pick("health_host", str, "0.0.0.0"),
        health_port=pick("health_port", int, None),
        stale_after=pick("stale_after", float, 60.0),
        loop=cast(LoopName, pick("loop", _choice("asyncio", "uvloop"), "asyncio")),
    )
    if options.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {options.workers}")
    if options.stale_after <= 0:
        raise CommandError(f"--stale-after must be positive, got {options.stale_after}")
    if options.stop_timeout < 0:
        raise CommandError(f"--stop-timeout must not be negative, got {options.stop_timeout}")
    if options.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise CommandError(
            f"--log-level must be DEBUG, INFO, WARNING or ERROR, not {options.log_level!r}"
        )
    return options


def _flag(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"expected one of {', '.join(_TRUE + _FALSE[1:])}")


def _choice(*allowed: str) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected {' or '.join(allowed)}")
        return raw

    return convert

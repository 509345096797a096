"""What `dispytch run` tells the operator on stderr: `dispytch: ...` lines, or with
`--log-format json` JSON lines like every other log record."""

from __future__ import annotations

import logging
import sys

from dispytch.logging import JSONFormatter, LogFormat, configure_logging

_settings: dict[str, LogFormat] = {"format": "text"}


def configure_output(log_level: str, log_format: LogFormat) -> None:
    """Set up the process's log records (`log_level`, `log_format`) and what `say` writes."""
    configure_logging(log_level, log_format)
    use_format(log_format)


def use_format(log_format: LogFormat) -> None:
    """Write what `say` is given as `log_format` from now on (the process's `--log-format`)."""
    _settings["format"] = log_format


def say(message: str) -> None:
    """Tell the operator `message` (a start, a stop, a restart) on stderr."""
    if _settings["format"] == "json":
        record = logging.makeLogRecord(
            {"name": "dispytch.cli", "levelno": logging.INFO, "levelname": "INFO", "msg": message}
        )
        line = JSONFormatter().format(record)
    else:
        line = f"dispytch: {message}"
    print(line, file=sys.stderr, flush=True)

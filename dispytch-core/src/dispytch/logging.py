"""Log output for services: plain text or one JSON object per line, standard library only.

Every line core writes about a message carries that message's context as `extra` fields
of the log record (`topic`, `event_type`, `event_id`, `handler`, `attempt`, `group`,
`backend`, `outcome`, `reason`); both formatters here write them out. ::

    from dispytch.logging import configure_logging

    configure_logging("INFO", "json")   # what `dispytch run --log-format json` does
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any, Literal

__all__ = ["CONTEXT_FIELDS", "ContextFormatter", "JSONFormatter", "configure_logging"]

LogFormat = Literal["text", "json"]

CONTEXT_FIELDS = (
    "topic",
    "event_type",
    "event_id",
    "handler",
    "attempt",
    "group",
    "backend",
    "outcome",
    "reason",
)
"""The `extra` fields core sets on log records about a message, in the order written."""

_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra` fields that have a value: context fields first, then the rest."""
    fields = {name: getattr(record, name, None) for name in CONTEXT_FIELDS}
    for name, value in vars(record).items():
        if name not in _RECORD_ATTRIBUTES and name not in fields and not name.startswith("_"):
            fields[name] = value
    return {name: value for name, value in fields.items() if value is not None}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC, ISO 8601), `level`, `logger`, `message`,
    every `extra` field, and `exception`/`stack` when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_extra(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class ContextFormatter(logging.Formatter):
    """Plain text lines, followed by the record's `extra` fields as `name=value` pairs."""

    def __init__(self, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _extra(record)
        if not fields:
            return line
        context = " ".join(f"{name}={value}" for name, value in fields.items())
        head, newline, rest = line.partition("\n")  # keep a traceback below the context
        return f"{head} [{context}]{newline}{rest}"


def configure_logging(
    level: int | str = "INFO", format: LogFormat = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every logger's records at `level` and above to `stream` (stderr) as `format`,
    replacing the root logger's handlers; returns the handler installed."""
    if format not in ("text", "json"):
        raise ValueError(f"log format is 'text' or 'json', got {format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if format == "json" else ContextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler

"""`dispytch.logging`: JSON lines and text lines that carry the context core puts on log records
about a message."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import BaseModel
from support import eventually, fresh

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.logging import ContextFormatter, JSONFormatter, configure_logging
from dispytch.testing import running


class Paid(EventBase):
    __topic__ = "invoices.{invoice}"
    __event_type__ = "paid"

    invoice: str


class PaidBody(BaseModel):
    invoice: str


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_json_lines_carry_the_context_of_the_message(restore_root_logger: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    broker = fresh("broker")
    listener = EventListener.from_url(f"memory://{broker}", group="billing")

    @listener.handler(topic="invoices.{invoice}", event="paid")
    async def book(event: Event[PaidBody]) -> None:
        raise ValueError("ledger closed")

    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        await emitter.emit(Paid(invoice="A-1"))
        await eventually(lambda: "dead-lettered" in out.getvalue())

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    [dead] = [line for line in lines if line["message"].startswith("dead-lettered")]
    assert dead["level"] == "WARNING"
    assert dead["logger"] == "dispytch.listener"
    assert dead["topic"] == "invoices.A-1"
    assert dead["event_type"] == "paid"
    assert dead["event_id"]
    assert dead["handler"].endswith("book")
    assert (dead["attempt"], dead["group"], dead["backend"]) == (1, "billing", "memory")
    assert (dead["outcome"], dead["reason"]) == ("dead_letter", "handler_failed")
    assert dead["time"].endswith("+00:00")


def test_json_lines_hold_exceptions_and_any_extra_field() -> None:
    logger = logging.getLogger("tests.log_format")
    record: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, r: logging.LogRecord) -> None:
            record.append(r)

    keep = Keep()
    logger.addHandler(keep)
    try:
        try:
            raise KeyError("missing")
        except KeyError:
            logger.exception("lookup failed for %s", "x", extra={"tenant": "acme"})
    finally:
        logger.removeHandler(keep)
    line = json.loads(JSONFormatter().format(record[0]))
    assert line["message"] == "lookup failed for x"
    assert line["tenant"] == "acme"
    assert "KeyError: 'missing'" in line["exception"]
    assert "topic" not in line, "fields without a value are left out"


def test_text_lines_append_the_context() -> None:
    record = logging.LogRecord("dispytch.listener", logging.INFO, "", 0, "retrying", None, None)
    record.topic, record.attempt = "invoices.A-1", 2
    line = ContextFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO retrying [topic=invoices.A-1 attempt=2]"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="'text' or 'json'"):
        configure_logging("INFO", "yaml")  # type: ignore[arg-type]

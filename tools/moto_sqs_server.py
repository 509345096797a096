"""moto's server, with two faults of its SQS ReceiveMessage mended.

- moto picks a message and marks it received without a lock, so two ReceiveMessage calls
  on one queue, served by two of its threads at once, can both return the same message;
  SQS hands a message to one receiver per visibility timeout. Here every pick runs under
  one lock and does not wait; a long poll waits between picks, outside the lock.
- For every message it returns, moto checks the retention period by computing all of the
  queue's attributes, which counts the queue's messages: a receive costs time in
  proportion to the queue's depth, ten times over. Here the check reads the one attribute.

    python tools/moto_sqs_server.py -H 127.0.0.1 -p PORT   (the arguments of moto.server)
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moto import server
from moto.core.utils import unix_time
from moto.sqs.models import SQSBackend

_pick = SQSBackend.receive_message
_picking = threading.Lock()
_POLL_INTERVAL = 0.02


def _receive_message(
    self: SQSBackend,
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> list[Any]:
    deadline = time.monotonic() + wait_seconds_timeout
    while True:
        with _picking:
            found = _pick(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(_POLL_INTERVAL)


def _within_retention_period(self: SQSBackend, queue_name: str, message: Any) -> bool:
    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention_period + message.sent_timestamp / 1000 > unix_time())


SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]
SQSBackend.is_message_valid_based_on_retention_period = _within_retention_period  # type: ignore[method-assign]

if __name__ == "__main__":
    server.main()

"""moto's server, with three faults of its SQS mended.

- moto serves requests in threads but changes a queue without a lock: two ReceiveMessage
  calls can both return the same message, which SQS hands to one receiver per visibility
  timeout, and deleting a message rebuilds the queue's list of messages, so that of two
  deletes at once one may be undone, and a message sent meanwhile lost. Here picking
  messages, adding one and deleting one run under one lock; a pick does not wait, and a
  long poll waits between picks, outside the lock, until a message is added (as SQS
  answers a long poll as soon as a message is there) or 20 ms passed (messages whose
  visibility timeout ran out are visible again without being added).
- For every message it returns, moto checks the retention period by computing all of the
  queue's attributes, which counts the queue's messages: a receive costs time in
  proportion to the queue's depth, ten times over. Here the check reads the one attribute.
- moto tells whether a message is visible, and counts a queue's messages on every send, by
  the clock read through a `datetime` (some microseconds each); here through `time.time()`,
  the same clock read directly, so that a queue thousands deep stays usable.

    python tools/moto_sqs_server.py -H 127.0.0.1 -p PORT   (the arguments of moto.server)
"""

from __future__ import annotations

import threading
import time
from typing import Any

import moto.sqs.models
from moto import server
from moto.sqs.models import Queue, SQSBackend

_pick = SQSBackend.receive_message
_add = Queue.add_message
_delete = Queue.delete_message
_changing = threading.RLock()
_added = threading.Condition(_changing)
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
    with _added:
        while True:
            found = _pick(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            _added.wait(min(left, _POLL_INTERVAL))


def _add_message(self: Queue, message: Any) -> None:
    with _added:
        _add(self, message)
        _added.notify_all()


def _delete_message(self: Queue, receipt_handle: str) -> None:
    with _changing:
        _delete(self, receipt_handle)


def _within_retention_period(self: SQSBackend, queue_name: str, message: Any) -> bool:
    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention_period + message.sent_timestamp / 1000 > time.time())


def _unix_time_millis() -> float:
    return time.time() * 1000.0


SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]
Queue.add_message = _add_message  # type: ignore[method-assign]
Queue.delete_message = _delete_message  # type: ignore[method-assign]
SQSBackend.is_message_valid_based_on_retention_period = _within_retention_period  # type: ignore[method-assign]
moto.sqs.models.unix_time = time.time
moto.sqs.models.unix_time_millis = _unix_time_millis

if __name__ == "__main__":
    server.main()

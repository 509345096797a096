"""moto's server, with its SQS ReceiveMessage made atomic.

moto picks a message and marks it received without a lock, so two ReceiveMessage calls
on one queue, served by two of its threads at once, can both return the same message;
SQS hands a message to one receiver per visibility timeout. Here every pick runs under
one lock and does not wait; a long poll waits between picks, outside the lock.

    python tools/moto_sqs_server.py -H 127.0.0.1 -p PORT   (the arguments of moto.server)
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moto import server
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


SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]

if __name__ == "__main__":
    server.main()

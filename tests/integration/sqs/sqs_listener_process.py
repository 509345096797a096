"""An SQS listener in its own process, for the crash test.

    python sqs_listener_process.py URL TOPIC GROUP RECORD_FILE

Handles `Numbered` events from TOPIC as a member of GROUP, each taking a few
milliseconds, and appends "number attempt" to RECORD_FILE for each, flushed before the
handler returns (so before the ack). Prints "ready" once its queue is subscribed and it
receives; runs until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from pydantic import BaseModel

from dispytch import Event, EventListener

EVENT_TYPE = "crash_test.numbered"
HANDLING_SECONDS = 0.005
"""Each event takes this long, so that a kill lands while many are in flight."""
QUICK = {"wait_time": 1, "visibility_timeout": 3, "receivers": 1}


class Numbered(BaseModel):
    number: int


async def main(url: str, topic: str, group: str, record: TextIO) -> None:
    listener = EventListener.from_backend("sqs", group=group, url=url, **QUICK)

    @listener.handler(topic=topic, event=EVENT_TYPE)
    async def handle(event: Event[Numbered]) -> None:
        await asyncio.sleep(HANDLING_SECONDS)
        record.write(f"{event.body.number} {event.attempt}\n")
        record.flush()

    task = asyncio.create_task(listener.listen())
    await listener.wait_ready()
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    url, topic, group, record_path = sys.argv[1:5]
    with open(record_path, "a", buffering=1) as record:
        asyncio.run(main(url, topic, group, record))

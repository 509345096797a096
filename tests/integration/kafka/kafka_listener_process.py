"""A listener process for the crash and scale-out tests.

    python kafka_listener_process.py BOOTSTRAP TOPIC GROUP RECORD_FILE [DELAY]

Handles `Numbered` events from TOPIC in GROUP, each taking DELAY seconds (default 0),
and appends "partition offset seq" to RECORD_FILE for each, flushed before the handler
returns (so before the ack). Prints
"ready" once the listener has joined the group, and stops gracefully on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TextIO

from pydantic import BaseModel

from dispytch import Event, EventListener

GROUP_SETTINGS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "commit_interval": 0.1}


class Numbered(BaseModel):
    seq: int


async def main(bootstrap: str, topic: str, group: str, record: TextIO, delay: float) -> None:
    listener = EventListener.from_backend(
        "kafka", group=group, bootstrap_servers=bootstrap, **GROUP_SETTINGS
    )

    @listener.handler(topic=topic, event="numbered")
    async def handle(event: Event[Numbered]) -> None:
        await asyncio.sleep(delay)
        meta = event.metadata
        record.write(f"{meta['partition']} {meta['offset']} {event.body.seq}\n")
        record.flush()

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(listener.listen())
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(listener.stop()))
    await listener.wait_ready()
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    bootstrap, topic, group, record_path, *delay = sys.argv[1:]
    with open(record_path, "a", buffering=1) as record:
        asyncio.run(main(bootstrap, topic, group, record, float(delay[0]) if delay else 0.0))

"""A Dispytch listener in its own process, for the test that SIGKILLs one mid-stream.

    python listener_process.py <amqp url> <group> <topic> <record file>

Every handled event appends its `seq` to the record file (one line each, written
through before the handler returns, so it survives SIGKILL). Prints "ready" once
consuming.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import BaseModel

from dispytch import Event, EventListener

EVENT_TYPE = "sigkill.ping"


class Body(BaseModel):
    seq: int


async def main(url: str, group: str, topic: str, record: Path) -> None:
    listener = EventListener.from_backend("rabbitmq", url=url, group=group, prefetch=20)
    with record.open("a", buffering=1) as lines:

        @listener.handler(topic=topic, event=EVENT_TYPE)
        async def handle(event: Event[Body]) -> None:
            await asyncio.sleep(0.002)
            lines.write(f"{event.body.seq}\n")

        task = asyncio.create_task(listener.listen())
        await listener.wait_ready()
        print("ready", flush=True)
        await task


if __name__ == "__main__":
    url, group, topic, record = sys.argv[1:]
    asyncio.run(main(url, group, topic, Path(record)))

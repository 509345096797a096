"""A Redis Streams listener in its own process, for the crash tests.

    python listener_process.py URL TOPIC GROUP

It handles `Numbered` events on TOPIC as a member of GROUP and records each handled
number in the Redis set `<TOPIC>:handled` (and the highest delivery count seen in the
hash `<TOPIC>:attempts`) before the event is acked. It runs until it is killed.
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import BaseModel
from redis.asyncio import Redis

from dispytch import Event, EventListener

EVENT_TYPE = "crash_test.numbered"
HANDLING_SECONDS = 0.002
"""Each event takes this long, so that a kill lands while many are in flight."""


class Numbered(BaseModel):
    number: int


async def main(url: str, topic: str, group: str) -> None:
    records = Redis.from_url(url)
    listener = EventListener.from_backend(
        "redis", group=group, url=url, claim_idle=1.0, claim_interval=0.2, block=0.2
    )

    @listener.handler(topic=topic, event=EVENT_TYPE)
    async def record(event: Event[Numbered]) -> None:
        await asyncio.sleep(HANDLING_SECONDS)
        async with records.pipeline(transaction=False) as pipe:
            pipe.sadd(f"{topic}:handled", event.body.number)
            pipe.hset(f"{topic}:attempts", str(event.body.number), event.attempt)
            await pipe.execute()

    await listener.listen()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))

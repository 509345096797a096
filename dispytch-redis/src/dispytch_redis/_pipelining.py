"""Sending the commands of concurrent emits together, in one pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

Command = Callable[[Pipeline | Redis], object]
"""Issues one command on a pipeline, or on the client for a lone command
(`lambda redis: redis.publish(channel, payload)`)."""

MAX_BATCH = 1000
"""Commands per pipeline at most."""


class Pipelining:
    """Runs commands issued by concurrent tasks as pipelines of up to `MAX_BATCH`: one
    round trip for a burst of emits instead of one each, in the order they were issued.

    A command issued while no pipeline is under way starts one on the next turn of the
    event loop, so the commands issued meanwhile go with it; those issued while a
    pipeline is under way go in the next one. A lone command costs one task switch more
    than sending it directly.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queued: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    def run(self, command: Command) -> asyncio.Future[Any]:
        """Queue `command`; the future gets its reply, or the error it or its pipeline raised."""
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        self._queued.append((command, reply))
        if self._sender is None:
            self._sender = loop.create_task(self._send())
        return reply

    async def drain(self) -> None:
        """Wait until every command queued so far was answered."""
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send(self) -> None:
        try:
            while self._queued:
                batch = self._queued[:MAX_BATCH]
                del self._queued[:MAX_BATCH]
                await self._send_batch(batch)
        finally:
            self._sender = None
            for _, reply in self._queued:  # cancelled: nothing else will send these
                reply.cancel()
            self._queued.clear()

    async def _send_batch(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:  # a lone command skips the pipeline's bookkeeping
                replies = [await _alone(batch[0][0], self.redis)]
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for command, _ in batch:
                        command(pipe)
                    replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the pipeline as a whole failed: so did each command
            for _, reply in batch:
                if not reply.done():
                    reply.set_exception(exc)
            return
        except BaseException:
            for _, reply in batch:
                reply.cancel()
            raise
        for (_, reply), answer in zip(batch, replies, strict=True):
            if reply.done():  # its emit was cancelled
                continue
            if isinstance(answer, Exception):
                reply.set_exception(answer)
            else:
                reply.set_result(answer)


async def _alone(command: Command, redis: Redis) -> Any:
    """Run `command` on the client itself; its error is its reply, as in a pipeline."""
    try:
        return await cast(Awaitable[Any], command(redis))
    except ResponseError as exc:
        return exc

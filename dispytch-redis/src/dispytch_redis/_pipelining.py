"""Sending the commands of concurrent emits together, in one pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

Command = Callable[[Pipeline | Redis], object]
"""Issues one command on a pipeline, or on the client for a lone command
(`lambda redis: redis.publish(channel, payload)`)."""

MAX_BATCH = 1000
"""Commands per pipeline at most."""


class Pipelining:
    """Runs commands issued by concurrent tasks as pipelines of up to `MAX_BATCH`: one
    round trip for a burst of emits instead of one each, in the order they were issued.

    A command issued while nothing is under way is sent at once, on the client, as a
    hand-written call would be; the commands issued while it or a pipeline is under way
    wait for it and go together in the next pipeline.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queued: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None  # held: the loop keeps only weak refs
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self, command: Command) -> Any:
        """Run `command` and return its reply; raise the error it or its pipeline raised."""
        if not self._idle.is_set():
            reply = asyncio.get_running_loop().create_future()
            self._queued.append((command, reply))
            return await reply
        self._idle.clear()
        try:
            return await cast(Awaitable[Any], command(self.redis))
        finally:
            self._send_queued()

    async def drain(self) -> None:
        """Wait until every command issued so far was answered."""
        await self._idle.wait()

    def _send_queued(self) -> None:
        if self._queued:
            self._sender = asyncio.get_running_loop().create_task(self._send())
        else:
            self._idle.set()

    async def _send(self) -> None:
        try:
            while self._queued:
                batch = self._queued[:MAX_BATCH]
                del self._queued[:MAX_BATCH]
                await self._send_batch(batch)
        finally:
            for _, reply in self._queued:  # cancelled: nothing else will send these
                reply.cancel()
            self._queued.clear()
            self._sender = None
            self._idle.set()

    async def _send_batch(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        try:
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

"""Scheduling handled messages: a bound on in-flight work, one lane per ordering key,
and a pool of workers for messages without a key.

On Python 3.12+, the first messages submitted in a turn of the event loop start at once,
in eager tasks: a handler runs in its own task until it first waits, so a message that
arrives alone or in a short burst waits for no turn of the event loop. The rest of a long
burst (and every message before 3.12) queues for workers, which are reused rather than
started per message: a worker keeps taking queued messages until none are left, so a fast
handler costs no task switch per message (and less than a task of its own), while a slow
one (awaiting I/O) lets other workers, up to the in-flight bound, carry on.

`handle` may return a future instead of settling the message (a batch handler's batch
collects it): the message keeps its slot until that future is done, and `finish` and
`cancel` wait for and cancel it like a worker.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from dispytch.listener.consumer import Message

logger = logging.getLogger("dispytch.listener")

EAGER_PER_TURN = 8 if sys.version_info >= (3, 12) else 0
"""Messages that start in an eager task per turn of the event loop (Python 3.12+, whose
tasks can start eagerly: a handler must run in a task of its own, which `asyncio.timeout`
and cancel scopes rely on); the rest queue for workers."""

Handle = Callable[[Message], Coroutine[Any, Any, object]]
"""Settles a message; or returns a future that is done once the message is settled."""


class Scheduler:
    """Runs `handle(msg)` for submitted messages, at most `limit` at a time.

    Messages sharing a key run one after another, in submission order; messages
    without a key run concurrently. The listener waits for room before pulling each
    message, so it stops pulling from its consumer while the bound is reached.
    """

    def __init__(self, handle: Handle, limit: int) -> None:
        self._handle = handle
        self._free = limit
        self._room: asyncio.Future[None] | None = None
        self._wake_at = max(1, limit // 4)  # wake the puller for a batch, not for each slot
        self._limit = limit
        self._lanes: dict[str, deque[Message]] = {}
        self._queue: deque[Message] = deque()
        self._idle: list[asyncio.Future[None]] = []
        self._idle_lanes: list[asyncio.Future[str | None]] = []  # lane runners waiting for a key
        self._workers = 0
        self._starting = 0
        self._closing = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._held: dict[asyncio.Future[Any], int] = {}  # futures settling messages: how many
        self._eager_left = EAGER_PER_TURN  # in this turn of the event loop

    @property
    def in_flight(self) -> int:
        """Messages submitted and not settled yet."""
        return self._limit - self._free

    @property
    def full(self) -> bool:
        """True while `limit` messages are in flight."""
        return self._free == 0

    async def wait_for_room(self) -> None:
        """Wait until fewer than `limit` messages are in flight (one waiter at a time)."""
        while self._free == 0:
            self._room = asyncio.get_running_loop().create_future()
            await self._room

    def submit(self, msg: Message, key: str | None) -> None:
        """Start or queue `msg`; the caller made sure the scheduler is not `full`."""
        self._free -= 1
        if self._eager_left and (key is None or key not in self._lanes):
            if self._eager_left == EAGER_PER_TURN:
                asyncio.get_running_loop().call_soon(self._turned)
            self._eager_left -= 1
            self._start(msg, key)
        elif key is None:
            self._queue.append(msg)
            if not self._starting:  # else a worker on its way takes it
                self._call_worker()
        elif key in self._lanes:
            self._lanes[key].append(msg)
        else:
            self._lanes[key] = deque([msg])
            self._drain_lane(key)

    async def finish(self, timeout: float) -> bool:
        """Let queued and running messages finish within `timeout` seconds; cancel the rest.

        True when everything finished.
        """
        self._closing = True
        self._wake_all()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:  # workers may hand messages to batches that are not running yet
            left = deadline - loop.time()
            _, pending = await asyncio.wait(set(self._tasks), timeout=max(left, 0.0))
            if pending:
                await self.cancel()
                return False
        return True

    async def cancel(self) -> None:
        """Cancel every worker; what they were handling is left unsettled."""
        self._closing = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()
        self._queue.clear()

    def _turned(self) -> None:
        self._eager_left = EAGER_PER_TURN

    def _start(self, msg: Message, key: str | None) -> None:
        """Handle `msg` in an eager task; if its handler waits, the next messages of its
        `key` queue in a lane behind it."""
        if sys.version_info >= (3, 12):  # EAGER_PER_TURN is 0 before
            loop = asyncio.get_running_loop()
            task = asyncio.Task(self._handle(msg), loop=loop, eager_start=True)
            if task.done():  # finished without waiting
                self._carried_on(msg, None, task)
                return
            self._tasks.add(task)
            if key is not None:
                self._lanes[key] = deque()
            task.add_done_callback(partial(self._carried_on, msg, key))

    def _carried_on(self, msg: Message, key: str | None, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        result = None
        if not task.cancelled():
            error = task.exception()
            if error is None:
                result = task.result()
            else:
                self._failed(msg, error)
        self._settled(result)
        if key is not None:
            if self._lanes.get(key):
                self._drain_lane(key)
            else:
                self._lanes.pop(key, None)

    def _drain_lane(self, key: str) -> None:
        """Hand `key`'s lane to an idle lane runner, or start one."""
        if self._idle_lanes:
            self._idle_lanes.pop().set_result(key)
        else:
            self._spawn(self._run_lanes(key))

    def _call_worker(self) -> None:
        """Make sure a worker will look at the queue: wake an idle one or start one.
        Callers check first that none is on its way already (`_starting`): a worker
        drains the whole queue."""
        if self._idle:
            self._starting += 1
            self._idle.pop().set_result(None)
        elif self._workers < self._limit:
            self._starting += 1
            self._spawn(self._work())

    def _wake_all(self) -> None:
        while self._idle:
            self._starting += 1
            self._idle.pop().set_result(None)
        while self._idle_lanes:  # to stop
            self._idle_lanes.pop().set_result(None)

    async def _work(self) -> None:
        self._workers += 1
        self._starting -= 1
        queue = self._queue
        try:
            while True:
                await self._settle_all(queue, call_workers=True)
                if self._closing:
                    return
                waiter = asyncio.get_running_loop().create_future()
                self._idle.append(waiter)
                await waiter
                self._starting -= 1
        finally:
            self._workers -= 1

    async def _run_lanes(self, key: str) -> None:
        """Drain the lane of `key`, then wait for the next new key's lane, until closing.

        A lane stays registered while it drains, so later messages of its key queue
        behind; once it is empty it is dropped, and the next message of its key starts a
        new lane. Reusing the runner costs less than a task per lane when lanes are short
        (one message each at low rates).
        """
        loop = asyncio.get_running_loop()
        next_key: str | None = key
        while next_key is not None:
            try:
                await self._settle_all(self._lanes[next_key], call_workers=False)
            finally:
                self._lanes.pop(next_key, None)
            if self._closing:
                return
            waiter = loop.create_future()
            self._idle_lanes.append(waiter)
            next_key = await waiter

    async def _settle_all(self, queue: deque[Message], *, call_workers: bool) -> None:
        """Handle `queue`'s messages until it is empty. With `call_workers`, another worker
        is called while more wait, in case a handler blocks this one."""
        handle = self._handle
        while queue:
            msg = queue.popleft()
            if call_workers and queue and not self._starting:
                self._call_worker()
            result = None
            try:
                result = await handle(msg)
            except Exception:
                self._failed(msg)
            finally:
                self._settled(result)

    def _settled(self, result: object) -> None:
        """A message is done with: free its slot, or, when it returned a future (its
        batch's), hold the slot until that is done."""
        if isinstance(result, asyncio.Future):
            self._hold(result)
        else:  # `_release()`, inline: this runs for every message
            self._free += 1
            room = self._room
            if room is not None and self._free >= self._wake_at and not room.done():
                room.set_result(None)

    def _failed(self, msg: Message, error: BaseException | None = None) -> None:
        logger.error(
            "settling a message from %s failed; the broker will redeliver it",
            msg.topic,
            exc_info=error or True,
            extra={"topic": msg.topic, "attempt": msg.attempt, "outcome": "unsettled"},
        )

    def _hold(self, settling: asyncio.Future[Any]) -> None:
        """Keep a message's slot until `settling` (often shared by a whole batch) is done."""
        held = self._held.get(settling)
        if held is None:
            self._held[settling] = 1
            self._tasks.add(settling)
            settling.add_done_callback(self._release_held)
        else:
            self._held[settling] = held + 1

    def _release_held(self, settling: asyncio.Future[Any]) -> None:
        self._tasks.discard(settling)
        if not settling.cancelled():
            settling.exception()  # retrieved: a batch logs what it raises
        self._release(self._held.pop(settling))

    def _release(self, slots: int) -> None:
        """Free the slots of settled messages; wake the puller once a batch of slots is free."""
        self._free += slots
        room = self._room
        if room is not None and self._free >= self._wake_at and not room.done():
            room.set_result(None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

"""Running batch handlers: collecting each handler's messages per ordering key into
batches, running a batch (validate, call with retries, dead-letter) and settling its
messages once it is done. `dispytch.listener.batch` holds the public side."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol

from dispytch._timers import wait_at_most
from dispytch.dead_letter import Reason
from dispytch.di.resolve import InvalidEvent, Scope, run, validated_event
from dispytch.event import Event
from dispytch.instrumentation import HandlerCall, Instrumentation
from dispytch.listener.batch import Batch, BatchFailed
from dispytch.listener.consumer import Message
from dispytch.listener.handler import Handler
from dispytch.listener.outcome import Outcome
from dispytch.serialization import Envelope

logger = logging.getLogger("dispytch.listener")


class BatchHost(Protocol):
    """What a batch runner uses of the dispatcher it runs for."""

    instrumentation: Instrumentation | None

    def handler_call(self, handler: Handler, msg: Message, envelope: Envelope) -> HandlerCall: ...

    def call_started(self, call: HandlerCall, attempt: int) -> None: ...

    def call_finished(self, call: HandlerCall, error: BaseException | None) -> None: ...

    def run_handler(
        self, handler: Handler, msg: Message, envelope: Envelope, segments: dict[str, str]
    ) -> Awaitable[Outcome]: ...

    async def dead_letter(
        self,
        msg: Message,
        error: BaseException,
        reason: Reason,
        handler: Handler | None,
        attempts: int,
        envelope: Envelope | None = None,
    ) -> Outcome: ...

    async def settle_batched(
        self, settlings: Sequence[Settling], outcomes: Sequence[Outcome | None]
    ) -> None: ...

    def report_unsettled(self, msg: Message, error: BaseException) -> None: ...


class Settling:
    """A message waiting for its batch handlers, with its envelope: settled when the
    last of them is done, with the strongest outcome of all its handlers."""

    __slots__ = ("envelope", "message", "outcome", "waiting")

    def __init__(
        self, message: Message, envelope: Envelope, outcome: Outcome | None, waiting: int
    ) -> None:
        self.message = message
        self.envelope = envelope
        self.outcome = outcome
        self.waiting = waiting


class _Open:
    """A batch being collected (its messages, nothing more per message), and the task
    that will run it."""

    __slots__ = ("full", "previous", "settlings", "task")

    def __init__(self, previous: asyncio.Task[None] | None) -> None:
        self.settlings: list[Settling] = []
        self.full = asyncio.Event()
        self.previous = previous
        """The batch of the same key before this one, which runs first."""
        self.task: asyncio.Task[None] | None = None


class BatchRunner:
    """Collects the messages of one batch handler per ordering key and runs the batches.

    Every batch is a task from its first message on; `add` returns it, so the listener's
    scheduler holds the message's slot until the batch is done and can cancel it.
    """

    def __init__(self, handler: Handler, batch: Batch, dispatcher: BatchHost) -> None:
        self.handler = handler
        self.batch = batch
        self.dispatcher = dispatcher
        self.body = handler.events_body
        self.draining = False
        self._open: dict[str | None, _Open] = {}
        self._last: dict[str | None, asyncio.Task[None]] = {}

    def add(self, settling: Settling) -> asyncio.Task[None]:
        """Put a message in its key's open batch; the task that runs that batch."""
        key = settling.message.key
        current = self._open.get(key)
        if current is None:
            current = self._open[key] = _Open(self._last.get(key))
            task = current.task = asyncio.create_task(self._collect_then_run(key, current))
            self._last[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        settlings = current.settlings
        settlings.append(settling)
        if len(settlings) >= self.batch.max_size:
            del self._open[key]
            current.full.set()
        assert current.task is not None
        return current.task

    def drain(self) -> None:
        """Run every open batch now (the listener stopped pulling), and later ones as
        soon as they have what is queued already."""
        self.draining = True
        for current in self._open.values():
            current.full.set()

    def _forget(self, key: str | None, task: asyncio.Task[None]) -> None:
        if self._last.get(key) is task:
            del self._last[key]

    async def _collect_then_run(self, key: str | None, current: _Open) -> None:
        try:
            if self.draining:
                await asyncio.sleep(0)  # take what the scheduler's lanes hand in meanwhile
            else:
                await wait_at_most(current.full, self.batch.max_wait)
            if self._open.get(key) is current:
                del self._open[key]
            previous = current.previous
            current.previous = None
            if previous is not None and not previous.done():
                await asyncio.wait({previous})  # batches of one key run in order
            await self._run(current.settlings)
        except Exception as exc:  # a failure nothing below foresaw
            logger.exception(
                "batch handler %s failed unexpectedly; the broker will redeliver its messages",
                self.handler.name,
            )
            self._left_unsettled(current.settlings, exc)
        except BaseException as exc:  # cancelled: the listener is stopping
            self._left_unsettled(current.settlings, exc)
            raise

    def _left_unsettled(self, settlings: list[Settling], error: BaseException) -> None:
        for settling in settlings:
            if settling.waiting > 0:
                self.dispatcher.report_unsettled(settling.message, error)

    async def _run(self, settlings: list[Settling]) -> None:
        """Validate, call with retries, then settle every message of the batch in one pass.

        The batch's events, handler calls and outcomes are lists by position in
        `settlings`, made here: a message waiting for its batch holds nothing more."""
        dispatcher, handler, body = self.dispatcher, self.handler, self.body
        size = len(settlings)
        events: list[Event[Any] | None] = [None] * size
        outcomes: list[Outcome | None] = [None] * size
        calls: list[HandlerCall] | None = None
        if dispatcher.instrumentation is not None:
            calls = [dispatcher.handler_call(handler, s.message, s.envelope) for s in settlings]
        pending: list[int] = []
        for index, settling in enumerate(settlings):
            try:
                events[index] = validated_event(body, settling.envelope, settling.message)
            except InvalidEvent as exc:
                outcomes[index] = await dispatcher.dead_letter(
                    settling.message, exc, "invalid", handler, 1, settling.envelope
                )
            else:
                pending.append(index)
        attempt = 1
        policy = handler.spec.retry
        while pending:
            failures = await self._call(settlings, events, calls, pending, attempt)
            retry: list[int] = []
            for index, error in failures:
                if policy.should_retry(error, attempt):
                    retry.append(index)
                    continue
                settling = settlings[index]
                logger.warning(
                    "batch handler %s failed on a message from %s (attempt %d): %r",
                    handler.name,
                    settling.message.topic,
                    attempt,
                    error,
                )
                outcomes[index] = await dispatcher.dead_letter(
                    settling.message, error, "handler_failed", handler, attempt, settling.envelope
                )
            if not retry:
                break
            delay = policy.delay(attempt)
            logger.info(
                "batch handler %s failed on %d of %d events; retry %d in %.2fs",
                handler.name,
                len(retry),
                len(pending),
                attempt,
                delay,
            )
            if calls is not None and dispatcher.instrumentation is not None:
                for index in retry:
                    dispatcher.instrumentation.retry_scheduled(calls[index], delay)
            await asyncio.sleep(delay)
            pending, attempt = retry, attempt + 1
        await dispatcher.settle_batched(settlings, outcomes)

    async def _call(
        self,
        settlings: list[Settling],
        events: list[Event[Any] | None],
        calls: list[HandlerCall] | None,
        pending: list[int],
        attempt: int,
    ) -> list[tuple[int, BaseException]]:
        """Call the handler once on the `pending` positions' events; the positions that
        failed, with why."""
        dispatcher = self.dispatcher
        batch = [event for index in pending if (event := events[index]) is not None]
        started = [] if calls is None else [calls[index] for index in pending]
        for call in started:
            dispatcher.call_started(call, attempt)
        try:
            first = settlings[pending[0]]
            await run(self.handler.plan, Scope(first.envelope, first.message, {}, batch))
            failures: list[tuple[int, BaseException]] = []
        except BatchFailed as exc:
            failures = self._failed_positions(events, pending, exc)
        except Exception as exc:
            failures = [(index, exc) for index in pending]
        except BaseException as exc:  # cancelled: the listener is stopping
            for call in reversed(started):
                dispatcher.call_finished(call, exc)
            raise
        if started:
            errors = dict(failures)
            for index in reversed(pending):  # the reverse order, for context tokens set on start
                assert calls is not None
                dispatcher.call_finished(calls[index], errors.get(index))
        return failures

    def _failed_positions(
        self, events: list[Event[Any] | None], pending: list[int], failed: BatchFailed
    ) -> list[tuple[int, BaseException]]:
        by_event = {id(events[index]): index for index in pending}
        found: dict[int, BaseException] = {}
        for event, error in failed.errors():
            index = by_event.get(id(event))
            if index is None:
                logger.warning(
                    "batch handler %s reported a failed event that is not in its batch "
                    "(pass the Event objects it was given); ignored",
                    self.handler.name,
                )
                continue
            found.setdefault(index, error)
        return list(found.items())


async def hand_to_batches(
    dispatcher: BatchHost,
    runners: Mapping[int, BatchRunner],
    msg: Message,
    envelope: Envelope,
    matched: Sequence[tuple[Handler, dict[str, str]]],
) -> asyncio.Future[Any]:
    """Run `msg`'s single-event handlers, then put it in the batches of its batch handlers;
    the future that is done once those settled it."""
    if len(matched) == 1:  # the usual case: the batch handler alone
        return runners[id(matched[0][0])].add(Settling(msg, envelope, None, 1))
    outcome: Outcome | None = None
    batched: list[BatchRunner] = []
    for handler, segments in matched:
        runner = runners.get(id(handler))
        if runner is not None:
            batched.append(runner)
            continue
        done = await dispatcher.run_handler(handler, msg, envelope, segments)
        outcome = done if outcome is None else max(outcome, done)
    settling = Settling(msg, envelope, outcome, len(batched))
    tasks = [runner.add(settling) for runner in batched]
    return tasks[0] if len(tasks) == 1 else asyncio.gather(*tasks)

"""Running batch handlers: collecting each handler's messages per ordering key into
batches, running a batch (validate, call with retries, dead-letter) and settling its
messages once it is done. `dispytch.listener.batch` holds the public side."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

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

    async def run_handler(
        self, handler: Handler, msg: Message, envelope: Envelope, segments: dict[str, str]
    ) -> Outcome: ...

    async def dead_letter(
        self,
        msg: Message,
        error: BaseException,
        reason: Reason,
        handler: Handler | None,
        attempts: int,
        envelope: Envelope | None = None,
    ) -> Outcome: ...

    async def settle_batched(self, settling: Settling, outcome: Outcome | None) -> None: ...

    def report_unsettled(self, msg: Message, error: BaseException) -> None: ...


class Settling:
    """A message waiting for its batch handlers: settled when the last of them is done,
    with the strongest outcome of all its handlers."""

    __slots__ = ("message", "outcome", "waiting")

    def __init__(self, message: Message, outcome: Outcome | None, waiting: int) -> None:
        self.message = message
        self.outcome = outcome
        self.waiting = waiting


@dataclass(eq=False, slots=True)
class _Entry:
    """One message in a batch: its event once validated, what instrumentation hears of
    it, and how the batch handler is done with it (`outcome` None: handled)."""

    settling: Settling
    envelope: Envelope
    event: Event[Any] | None = None
    call: HandlerCall | None = None
    outcome: Outcome | None = None

    @property
    def message(self) -> Message:
        return self.settling.message


@dataclass(eq=False)
class _Open:
    """A batch being collected, and the task that will run it."""

    entries: list[_Entry] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    previous: asyncio.Task[None] | None = None
    """The batch of the same key before this one, which runs first."""
    task: asyncio.Task[None] | None = None


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

    def add(self, settling: Settling, envelope: Envelope) -> asyncio.Task[None]:
        """Put a message in its key's open batch; the task that runs that batch."""
        key = settling.message.key
        current = self._open.get(key)
        if current is None:
            current = self._open[key] = _Open(previous=self._last.get(key))
            task = asyncio.create_task(self._collect_then_run(key, current))
            self._last[key] = current.task = task
            task.add_done_callback(lambda done: self._forget(key, done))
        current.entries.append(_Entry(settling, envelope))
        if len(current.entries) >= self.batch.max_size:
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
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(current.full.wait(), self.batch.max_wait)
            if self._open.get(key) is current:
                del self._open[key]
            previous = current.previous
            if previous is not None and not previous.done():
                await asyncio.wait({previous})  # batches of one key run in order
            await self._run(current.entries)
        except Exception as exc:  # a failure nothing below foresaw
            logger.exception(
                "batch handler %s failed unexpectedly; the broker will redeliver its messages",
                self.handler.name,
            )
            self._left_unsettled(current.entries, exc)
        except BaseException as exc:  # cancelled: the listener is stopping
            self._left_unsettled(current.entries, exc)
            raise

    def _left_unsettled(self, entries: list[_Entry], error: BaseException) -> None:
        for entry in entries:
            if entry.settling.waiting > 0:
                self.dispatcher.report_unsettled(entry.message, error)

    async def _run(self, entries: list[_Entry]) -> None:
        """Validate, call with retries, then settle every message of the batch."""
        dispatcher, handler = self.dispatcher, self.handler
        pending: list[_Entry] = []
        for entry in entries:
            if dispatcher.instrumentation is not None:
                entry.call = dispatcher.handler_call(handler, entry.message, entry.envelope)
            try:
                entry.event = validated_event(self.body, entry.envelope, entry.message)
            except InvalidEvent as exc:
                entry.outcome = await dispatcher.dead_letter(
                    entry.message, exc, "invalid", handler, 1, entry.envelope
                )
            else:
                pending.append(entry)
        attempt = 1
        policy = handler.spec.retry
        while pending:
            failures = await self._call(pending, attempt)
            retry: list[_Entry] = []
            for entry, error in failures:
                if policy.should_retry(error, attempt):
                    retry.append(entry)
                    continue
                logger.warning(
                    "batch handler %s failed on a message from %s (attempt %d): %r",
                    handler.name,
                    entry.message.topic,
                    attempt,
                    error,
                )
                entry.outcome = await dispatcher.dead_letter(
                    entry.message, error, "handler_failed", handler, attempt, entry.envelope
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
            for entry in retry:
                if entry.call is not None and dispatcher.instrumentation is not None:
                    dispatcher.instrumentation.retry_scheduled(entry.call, delay)
            await asyncio.sleep(delay)
            pending, attempt = retry, attempt + 1
        for entry in entries:
            await dispatcher.settle_batched(entry.settling, entry.outcome)

    async def _call(
        self, pending: list[_Entry], attempt: int
    ) -> list[tuple[_Entry, BaseException]]:
        """Call the handler once on `pending`'s events; the entries that failed, with why."""
        dispatcher = self.dispatcher
        events = [entry.event for entry in pending if entry.event is not None]
        calls = [entry.call for entry in pending if entry.call is not None]
        for call in calls:
            dispatcher.call_started(call, attempt)
        try:
            first = pending[0]
            await run(self.handler.plan, Scope(first.envelope, first.message, {}, events))
            failures: list[tuple[_Entry, BaseException]] = []
        except BatchFailed as exc:
            failures = self._failed_entries(pending, exc)
        except Exception as exc:
            failures = [(entry, exc) for entry in pending]
        except BaseException as exc:  # cancelled: the listener is stopping
            for call in reversed(calls):
                dispatcher.call_finished(call, exc)
            raise
        errors = {id(entry): error for entry, error in failures}
        for entry in reversed(pending):  # the reverse order, for context tokens set on start
            if entry.call is not None:
                dispatcher.call_finished(entry.call, errors.get(id(entry)))
        return failures

    def _failed_entries(
        self, pending: Sequence[_Entry], failed: BatchFailed
    ) -> list[tuple[_Entry, BaseException]]:
        by_event = {id(entry.event): entry for entry in pending}
        found: dict[int, tuple[_Entry, BaseException]] = {}
        for event, error in failed.errors():
            entry = by_event.get(id(event))
            if entry is None:
                logger.warning(
                    "batch handler %s reported a failed event that is not in its batch "
                    "(pass the Event objects it was given); ignored",
                    self.handler.name,
                )
                continue
            found.setdefault(id(entry), (entry, error))
        return list(found.values())


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
        return runners[id(matched[0][0])].add(Settling(msg, None, 1), envelope)
    outcome: Outcome | None = None
    batched: list[BatchRunner] = []
    for handler, segments in matched:
        runner = runners.get(id(handler))
        if runner is not None:
            batched.append(runner)
            continue
        done = await dispatcher.run_handler(handler, msg, envelope, segments)
        outcome = done if outcome is None else max(outcome, done)
    settling = Settling(msg, outcome, len(batched))
    tasks = [runner.add(settling, envelope) for runner in batched]
    return tasks[0] if len(tasks) == 1 else asyncio.gather(*tasks)

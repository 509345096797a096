"""Which JetStream stream holds a subject: the one that captures it already, or one
created for the subject's first token."""

from __future__ import annotations

import asyncio
import json
import logging

from nats.aio.client import Client
from nats.js import api
from nats.js.errors import APIError

from dispytch_nats.settings import NatsJetStreamSettings
from dispytch_nats.subjects import SubjectError, root

logger = logging.getLogger("dispytch.nats")

_NAME_IN_USE = 10058
_SUBJECTS_OVERLAP = 10065
_FORBIDDEN_IN_NAMES = set(".*>/\\") | {chr(c) for c in range(33)}


class StreamError(RuntimeError):
    """No stream holds a subject, and none could be created for it."""


class Streams:
    """Finds the streams of subjects on one connection, creating missing ones as
    `settings` say; what it found or created is remembered."""

    def __init__(self, client: Client, settings: NatsJetStreamSettings) -> None:
        self.client = client
        self.js = client.jetstream(
            timeout=settings.timeout, publish_async_max_pending=settings.publish_window
        )
        self.settings = settings
        self._created: dict[str, asyncio.Task[str]] = {}

    async def holding(self, filter_subject: str) -> list[str]:
        """The streams holding subjects `filter_subject` matches. When none does and the
        subject starts with a literal token, the stream for that token is created."""
        reply = await self.client.request(
            "$JS.API.STREAM.NAMES",
            json.dumps({"subject": filter_subject}).encode(),
            timeout=self.settings.timeout,
        )
        found: list[str] = json.loads(reply.data).get("streams") or []
        first = root(filter_subject)
        if found or first is None:
            return sorted(found)
        return [await self.create(first)]

    def create(self, first: str) -> asyncio.Task[str]:
        """Create the stream for subjects starting with token `first` (once, however many
        ask at the same time); the task's result is the stream's name."""
        task = self._created.get(first)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(self._create(first))
            self._created[first] = task
        return task

    async def _create(self, first: str) -> str:
        name = self.settings.stream_name.format(root=first)
        if not name or set(name) & _FORBIDDEN_IN_NAMES:
            raise SubjectError(
                f"stream name {name!r} (stream_name {self.settings.stream_name!r} for topics "
                f"starting with {first!r}) cannot name a JetStream stream: it must not contain "
                "whitespace, '.', '*', '>', '/' or '\\'"
            )
        subjects = [first, f"{first}.>"]
        config = api.StreamConfig(
            name=name,
            subjects=subjects,
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType(self.settings.storage),
            num_replicas=self.settings.replicas,
            max_age=self.settings.max_age,
        )
        try:
            await self.js.add_stream(config)
        except APIError as exc:
            if exc.err_code == _NAME_IN_USE:
                return await self._existing(name, first)
            overlap = " (another stream captures some of them)" * (
                exc.err_code == _SUBJECTS_OVERLAP
            )
            raise StreamError(
                f"no JetStream stream captures topics starting with {first!r}, and creating "
                f"stream {name!r} for {subjects} failed{overlap}: {exc.description}. Create a "
                "stream capturing them, or set stream_name to a free name"
            ) from exc
        logger.info("created JetStream stream %r for subjects %s", name, subjects)
        return name

    async def _existing(self, name: str, first: str) -> str:
        info = await self.js.stream_info(name)
        held = info.config.subjects or []
        if f"{first}.>" not in held:
            raise StreamError(
                f"stream {name!r} exists but captures {held}, not topics starting with "
                f"{first!r}: set stream_name to another name, or add '{first}.>' to its subjects"
            )
        return name

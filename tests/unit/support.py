"""Helpers shared by the unit tests: reading what reached a wire, and bounded waiting."""

import asyncio
import uuid
from collections.abc import Callable

from seed_fakes import Wire

from dispytch import DeadLetter
from dispytch.dead_letter import DEAD_LETTER_EVENT
from dispytch.serialization import JSONSerializer, Serializer

WAIT = 5.0
"""Upper bound for every wait on something that happens promptly; generous for loaded machines."""


def fresh(kind: str) -> str:
    """A name no other test uses, for topics, groups and memory brokers."""
    return f"{kind}-{uuid.uuid4().hex[:10]}"


def dead_letters(wire: Wire, serializer: Serializer | None = None) -> list[tuple[str, DeadLetter]]:
    """The dead letters published to `wire` (JSON unless told), with the topic each went to."""
    letters = []
    for record in wire.sent:
        envelope = (serializer or JSONSerializer()).loads(record.payload)
        assert envelope.type == DEAD_LETTER_EVENT
        letters.append((record.topic, DeadLetter.model_validate(envelope.body)))
    return letters


async def eventually(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Return once `condition()` holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)


async def let_run(steps: int = 20) -> None:
    """Give every ready task many turns, so that work that could start has started."""
    for _ in range(steps):
        await asyncio.sleep(0.005)

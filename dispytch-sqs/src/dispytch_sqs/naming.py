"""How Dispytch topics and groups become SNS topic and SQS queue names.

AWS allows letters, digits, `-` and `_` in both, up to 256 characters for a topic and
80 for a queue, `.fifo` included. Letters, digits and `-` are kept; every other
character becomes `_` and its UTF-8 bytes in hex (`users.42` → `users_2E42`,
`a_b` → `a_5Fb`), so two topics never share a name. A name still too long keeps its
start and ends in `-` and eight hex digits of a hash of the whole name.
"""

from __future__ import annotations

import hashlib
import re

TOPIC_NAME_LIMIT = 256
QUEUE_NAME_LIMIT = 80
FIFO_SUFFIX = ".fifo"
DEAD_LETTER_SUFFIX = "-dlq"

_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def topic_name(topic: str, prefix: str = "", fifo: bool = False) -> str:
    """The SNS topic that Dispytch topic `topic` is published to."""
    return _name(prefix + _escape(topic), TOPIC_NAME_LIMIT, fifo)


def queue_name(group: str, prefix: str = "", fifo: bool = False) -> str:
    """The SQS queue of listener group `group`."""
    return _name(prefix + _escape(group), QUEUE_NAME_LIMIT - len(DEAD_LETTER_SUFFIX), fifo)


def dead_letter_queue_name(queue: str) -> str:
    """The dead-letter queue of the queue named `queue`."""
    if queue.endswith(FIFO_SUFFIX):
        return queue.removesuffix(FIFO_SUFFIX) + DEAD_LETTER_SUFFIX + FIFO_SUFFIX
    return queue + DEAD_LETTER_SUFFIX


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: "".join(f"_{b:02X}" for b in m.group().encode()), text)


def _name(name: str, limit: int, fifo: bool) -> str:
    suffix = FIFO_SUFFIX if fifo else ""
    room = limit - len(suffix)
    if len(name) > room:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: room - 9]}-{digest}"
    return name + suffix

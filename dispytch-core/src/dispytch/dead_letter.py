"""Dead letters: a message that cannot be handled, with why, published for a human or a tool.

A dead letter travels as an ordinary event of type `dispytch.dead_letter` whose
body is `DeadLetter`, so a Dispytch listener can handle a dead-letter topic with
a typed handler (`Event[DeadLetter]`) to inspect or replay what failed.
"""

from __future__ import annotations

import base64
import binascii
import time
import traceback
from typing import Literal

from pydantic import BaseModel

from dispytch.listener.consumer import Message
from dispytch.serialization import Envelope
from dispytch.serialization.envelope import new_event_id

DEAD_LETTER_EVENT = "dispytch.dead_letter"

Reason = Literal["handler_failed", "undecodable", "invalid", "unmatched", "too_many_deliveries"]


def check_topic_template(template: str) -> None:
    """Raise `ValueError` now for a dead-letter topic that does not format with `{topic}` alone,
    rather than at the first dead letter, which could then not be settled."""
    try:
        template.format(topic="topic")
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"dead-letter topic {template!r} cannot be formatted ({type(exc).__name__}: {exc}); "
            "the only placeholder it may use is {topic}"
        ) from None


class DeadLetter(BaseModel):
    """Body of a dead-letter event: the original message and the error that stopped it."""

    reason: Reason
    topic: str
    payload: str
    payload_encoding: Literal["utf-8", "base64"]
    headers: dict[str, str]
    key: str | None
    error_type: str
    error_message: str
    traceback: str | None = None
    handler: str | None = None
    attempts: int
    failed_at: int

    def original_payload(self) -> bytes:
        """The bytes of the message as it was received."""
        if self.payload_encoding == "utf-8":
            return self.payload.encode()
        try:
            return base64.b64decode(self.payload)
        except binascii.Error as exc:  # pragma: no cover - only for hand-edited letters
            raise ValueError(f"dead letter payload is not base64: {exc}") from exc

    @classmethod
    def of(
        cls,
        message: Message,
        error: BaseException,
        *,
        reason: Reason,
        handler: str | None = None,
        attempts: int = 1,
    ) -> DeadLetter:
        try:
            payload, encoding = message.payload.decode(), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(message.payload).decode(), "base64"
        return cls(
            reason=reason,
            topic=message.topic,
            payload=payload,
            payload_encoding=encoding,  # type: ignore[arg-type]
            headers=dict(message.headers),
            key=message.key,
            error_type=f"{type(error).__module__}.{type(error).__qualname__}",
            error_message=str(error),
            traceback="".join(traceback.format_exception(error)) if error.__traceback__ else None,
            handler=handler,
            attempts=attempts,
            failed_at=int(time.time() * 1000),
        )

    def envelope(self) -> Envelope:
        return Envelope(
            new_event_id(), DEAD_LETTER_EVENT, self.model_dump(mode="json"), self.failed_at
        )

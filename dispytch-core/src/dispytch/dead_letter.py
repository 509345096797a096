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

Reason = Literal[
    "handler_failed",
    "undecodable",
    "invalid",
    "unmatched",
    "too_many_deliveries",
    "too_large",
    "internal_error",
]
"""Why a message was dead-lettered: its handler kept failing; its payload is not an event
envelope; its body or a topic segment does not validate; no handler takes it; it was
delivered more than `max_deliveries` times; it is larger than `max_message_bytes`; or
the listener failed on it in a way nothing above foresaw."""

KEPT_PAYLOAD_BYTES = 64 * 1024
"""How much of the original payload a dead letter keeps when it cannot keep all of it."""

_KEPT_TEXT = 4096


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
    """Body of a dead-letter event: the original message and the error that stopped it.

    `payload_size` is the original payload's length in bytes. When the letter could not
    carry everything (a payload too large to keep, a letter the serializer or broker
    refused), `omitted` says what was left out and why, and `payload` holds the first
    `KEPT_PAYLOAD_BYTES` of the original.
    """

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
    payload_size: int | None = None
    omitted: str | None = None

    def original_payload(self) -> bytes:
        """The bytes of the message as it was received (their first part when `omitted`
        says the payload was cut)."""
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
        keep: int | None = None,
    ) -> DeadLetter:
        """The dead letter of `message`, stopped by `error`. With `keep`, a payload longer
        than `keep` bytes is cut to that many. Never raises: what cannot be read of the
        message or the error is described instead."""
        raw = message.payload
        omitted = None
        if keep is not None and len(raw) > keep:
            omitted = f"payload cut to its first {keep} of {len(raw)} bytes"
        payload, encoding = _text(raw if omitted is None else raw[:keep])
        return cls(
            reason=reason,
            topic=_safe_str(message.topic),
            payload=payload,
            payload_encoding=encoding,
            headers={_safe_str(k): _safe_str(v) for k, v in message.headers.items()},
            key=None if message.key is None else _safe_str(message.key),
            error_type=error_type_name(error),
            error_message=error_text(error),
            traceback=_traceback_of(error),
            handler=handler,
            attempts=attempts,
            failed_at=int(time.time() * 1000),
            payload_size=len(raw),
            omitted=omitted,
        )

    def reduced(self, why: str) -> DeadLetter:
        """This letter cut down to what any serializer and broker take: the payload's first
        `KEPT_PAYLOAD_BYTES` as base64, the error message shortened and escaped, no
        traceback; `omitted` says so, and `why`."""
        kept = self.original_payload()[:KEPT_PAYLOAD_BYTES]
        cut = [] if self.omitted is None else [self.omitted]
        if len(kept) < (self.payload_size or 0) and not cut:
            cut.append(f"payload cut to its first {len(kept)} of {self.payload_size} bytes")
        cut.append(f"traceback and long texts dropped: {_plain(why)}")
        return self.model_copy(
            update={
                "topic": _plain(self.topic),
                "payload": base64.b64encode(kept).decode(),
                "payload_encoding": "base64",
                "headers": {_plain(k): _plain(v) for k, v in self.headers.items()},
                "key": None if self.key is None else _plain(self.key),
                "error_message": _plain(self.error_message),
                "traceback": None,
                "omitted": "; ".join(cut),
            }
        )

    def envelope(self) -> Envelope:
        return Envelope(
            new_event_id(), DEAD_LETTER_EVENT, self.model_dump(mode="json"), self.failed_at
        )


def _text(payload: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    try:
        return payload.decode(), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode(), "base64"


def _safe_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def error_type_name(error: BaseException) -> str:
    """The error's class as `module.QualifiedName`, as dead letters and error replies name it."""
    return f"{type(error).__module__}.{type(error).__qualname__}"


def error_text(error: BaseException) -> str:
    """`str(error)`, or a description of the error when that fails."""
    try:
        return str(error)
    except Exception:
        return f"<the message of this {type(error).__name__} could not be read>"


def _traceback_of(error: BaseException) -> str | None:
    if error.__traceback__ is None:
        return None
    try:
        return "".join(traceback.format_exception(error))
    except Exception:
        return None


def _plain(text: str) -> str:
    """`text` shortened to `_KEPT_TEXT` characters, as ASCII any encoder takes."""
    if len(text) > _KEPT_TEXT:
        text = f"{text[:_KEPT_TEXT]}... ({len(text)} characters)"
    return text.encode("ascii", "backslashreplace").decode("ascii")

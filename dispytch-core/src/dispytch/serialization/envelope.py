"""The envelope every event travels in, and the serializer seam."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol


class DecodeError(ValueError):
    """A payload is not a valid event envelope."""


@dataclass(slots=True)
class Envelope:
    """The wire format shared with Dispytch 0.10: `{"id", "type", "body", "timestamp"}`.

    `timestamp` is milliseconds since the epoch.
    """

    id: str
    type: str
    body: Any
    timestamp: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "body": self.body, "timestamp": self.timestamp}

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        """Check the shape of a decoded payload; raise `DecodeError` saying what is off."""
        try:
            event_id, event_type = data["id"], data["type"]
            body, timestamp = data["body"], data["timestamp"]
        except (KeyError, TypeError):
            if not isinstance(data, dict):
                raise DecodeError(
                    f"expected an envelope object, got {type(data).__name__}"
                ) from None
            missing = [k for k in ("id", "type", "body", "timestamp") if k not in data]
            raise DecodeError(f"envelope lacks {', '.join(missing)}") from None
        # Checked before the envelope is built: compiled (see dispytch.build), its fields
        # take only their own types, and a bool would pass for an int.
        if type(event_id) is not str or type(event_type) is not str:
            raise DecodeError("envelope 'id' and 'type' must be strings")
        if type(timestamp) is not int:
            raise DecodeError("envelope 'timestamp' must be an integer (epoch milliseconds)")
        return cls(event_id, event_type, body, timestamp)


def new_event_id() -> str:
    """A random UUID (version 4) as `str(uuid.uuid4())` writes it, built at a third of the cost."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class Serializer(Protocol):
    """Turns an envelope into bytes and back; `loads` raises `DecodeError` on bad input."""

    def dumps(self, envelope: Envelope) -> bytes: ...

    def loads(self, payload: bytes) -> Envelope: ...

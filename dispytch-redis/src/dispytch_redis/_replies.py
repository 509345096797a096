"""Reading redis-py replies whatever the client's options: `decode_responses` on or off,
RESP2 or RESP3, legacy or unified response shapes."""

from __future__ import annotations

from typing import Any

Entry = tuple[Any, Any]
"""One stream entry as redis-py returns it: `(id, fields)`."""


def text(value: str | bytes) -> str:
    """A name or id as `str`."""
    return value.decode() if isinstance(value, bytes) else value


def data(value: str | bytes) -> bytes:
    """A payload as `bytes`."""
    return value.encode() if isinstance(value, str) else value


def field(fields: dict[Any, Any], name: str) -> Any:
    """The value of field `name` of a stream entry, or None."""
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


def stream_entries(reply: Any) -> list[tuple[str, list[Entry]]]:
    """An XREAD/XREADGROUP reply as `(stream, entries)` pairs."""
    pairs = reply.items() if isinstance(reply, dict) else reply or ()
    found = []
    for stream, entries in pairs:
        if entries and isinstance(entries[0], list):  # RESP3 in legacy shape nests once more
            entries = entries[0]
        found.append((text(stream), entries))
    return found

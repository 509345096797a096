"""Channel addresses: event topic templates and handler topic patterns as AsyncAPI addresses.

`users.{user_id}` (a template an event is formatted with, or a handler pattern) becomes
the address `users.{user_id}` with the parameter `user_id`; a handler's `*` becomes a
parameter too. Topics of the same shape (`shop.{region}.orders` and `shop.*.orders`)
are one channel.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

from dispytch.routing import TopicPattern

_NOT_AN_ID = re.compile(r"[^A-Za-z0-9_.\-]+")
_NOT_A_PARAMETER = re.compile(r"[^A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class Placeholder:
    """A variable part of a topic: a named parameter, or None for a `*` wildcard."""

    name: str | None


Piece = str | Placeholder


@dataclass(frozen=True)
class Address:
    """A topic as literal text and placeholders."""

    pieces: tuple[Piece, ...]

    @property
    def shape(self) -> tuple[str | None, ...]:
        """The literal pieces with every placeholder blanked: one shape, one channel."""
        return tuple(p if isinstance(p, str) else None for p in self.pieces)

    @property
    def names(self) -> list[str | None]:
        """The placeholders' names in order (None for a wildcard)."""
        return [p.name for p in self.pieces if isinstance(p, Placeholder)]

    def render(self, names: list[str]) -> str:
        """The AsyncAPI address text, with `{name}` for each placeholder in order."""
        given = iter(names)
        return "".join(p if isinstance(p, str) else "{" + next(given) + "}" for p in self.pieces)


def from_template(template: str) -> Address:
    """The address of a `str.format` template, such as an event's `__topic__`."""
    pieces: list[Piece] = []
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        pieces.append(literal)
        if field is not None:
            pieces.append(Placeholder(_parameter_name(field) if field else None))
    return joined(pieces)


def from_pattern(pattern: TopicPattern) -> Address:
    """The address of a handler's topic pattern; a `*` segment is an unnamed placeholder."""
    pieces: list[Piece] = []
    for index, segment in enumerate(pattern.segments):
        if index:
            pieces.append(pattern.delimiter)
        if segment.kind == "literal":
            pieces.append(segment.value)
        else:
            pieces.append(Placeholder(segment.value if segment.kind == "param" else None))
    return joined(pieces)


def channel_id(address: str) -> str:
    """An id for an address, safe in JSON pointers and names: `users.{id}` -> `users.id`."""
    return safe_id(address.replace("{", "").replace("}", ""))


def safe_id(text: str) -> str:
    """`text` with every run of characters not allowed in a component name replaced by `_`."""
    return _NOT_AN_ID.sub("_", text).strip("_") or "_"


def _parameter_name(field: str) -> str:
    return _NOT_A_PARAMETER.sub("_", field).strip("_") or "param"


def joined(pieces: Iterable[Piece]) -> Address:
    """The address of `pieces`: adjacent literal pieces joined into one, empty ones dropped."""
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, str):
            if not piece:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += piece
                continue
        out.append(piece)
    return Address(tuple(out))

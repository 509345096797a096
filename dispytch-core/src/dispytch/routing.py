"""Topic patterns: which topics a handler listens to, and what it extracts from them.

A pattern is split on a delimiter (`.` by default) into segments. A segment is a
literal, a `{name}` parameter (one whole segment, extracted for the handler) or a
`*` wildcard (one whole segment, not extracted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

SegmentKind = Literal["literal", "param", "wildcard"]

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class TopicPatternError(ValueError):
    """A handler's topic pattern is malformed."""


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    value: str  # the literal text, or the parameter name, or "*"


@dataclass(frozen=True)
class TopicPattern:
    """A parsed handler topic such as `users.{user_id}.*`."""

    text: str
    delimiter: str = "."
    segments: tuple[Segment, ...] = field(init=False)
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.text:
            raise TopicPatternError("a topic pattern cannot be empty")
        if not self.delimiter:
            raise TopicPatternError(f"topic {self.text!r}: the delimiter cannot be empty")
        segments = [_parse_segment(self.text, part) for part in self.text.split(self.delimiter)]
        names = [s.value for s in segments if s.kind == "param"]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise TopicPatternError(
                f"topic {self.text!r} names the parameter(s) {sorted(duplicated)} more than once"
            )
        object.__setattr__(self, "segments", tuple(segments))
        object.__setattr__(self, "_compiled", re.compile(self._regex_source()))

    @property
    def is_literal(self) -> bool:
        """True when the pattern has no parameters or wildcards."""
        return all(s.kind == "literal" for s in self.segments)

    @property
    def params(self) -> tuple[str, ...]:
        """The names of the `{name}` segments, in order."""
        return tuple(s.value for s in self.segments if s.kind == "param")

    def match(self, topic: str) -> dict[str, str] | None:
        """The extracted parameters when `topic` matches, else None."""
        found = self._compiled.fullmatch(topic)
        return None if found is None else found.groupdict()

    @property
    def regex(self) -> str:
        """A regular expression matching whole topic names (for regex subscriptions)."""
        return self._compiled.pattern

    def with_wildcards(self, wildcard: str = "*", delimiter: str | None = None) -> str:
        """The pattern with every parameter replaced by `wildcard`, joined by `delimiter`.

        `with_wildcards("*", ".")` gives an AMQP topic binding; `with_wildcards("*")`
        a Redis PSUBSCRIBE glob.
        """
        parts = [s.value if s.kind == "literal" else wildcard for s in self.segments]
        return (self.delimiter if delimiter is None else delimiter).join(parts)

    def _regex_source(self) -> str:
        parts = []
        for s in self.segments:
            if s.kind == "literal":
                parts.append(re.escape(s.value))
            else:
                one_segment = f"(?:(?!{re.escape(self.delimiter)}).)+"
                parts.append(f"(?P<{s.value}>{one_segment})" if s.kind == "param" else one_segment)
        return re.escape(self.delimiter).join(parts)

    def __str__(self) -> str:
        return self.text


def _parse_segment(text: str, part: str) -> Segment:
    if part == "*":
        return Segment("wildcard", "*")
    param = _PARAM.match(part)
    if param:
        return Segment("param", param.group(1))
    if not part:
        raise TopicPatternError(f"topic {text!r} has an empty segment")
    if any(c in part for c in "{}*"):
        raise TopicPatternError(
            f"topic {text!r}: segment {part!r} mixes text with '{{...}}' or '*'; "
            "a parameter or wildcard must be a whole segment"
        )
    return Segment("literal", part)

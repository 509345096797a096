"""Topic patterns as Redis sees them: a literal topic is a key or channel, a pattern
with parameters or wildcards becomes a glob for SCAN MATCH and PSUBSCRIBE."""

from __future__ import annotations

import re
from collections.abc import Iterable

from dispytch.routing import TopicPattern

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def parse(topics: Iterable[str | TopicPattern]) -> tuple[TopicPattern, ...]:
    """Topics given as strings or patterns, as patterns."""
    return tuple(t if isinstance(t, TopicPattern) else TopicPattern(t) for t in topics)


def glob(pattern: TopicPattern) -> str:
    """A Redis glob matching at least the topics `pattern` matches.

    Redis's `*` also matches delimiters, so names found with it are checked
    against `pattern.match` before use.
    """
    parts = [_escape(s.value) if s.kind == "literal" else "*" for s in pattern.segments]
    return _escape(pattern.delimiter).join(parts)


def _escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)

"""Topics as NATS subjects: a topic is a subject, and a topic pattern becomes a subject
with `*` where it has `{param}` or `*` segments.

A consumer or subscription listens to a set of such subjects that NATS requires to be
disjoint (JetStream refuses overlapping filter subjects, and overlapping core
subscriptions would deliver a message twice). `disjoint` merges the ones that overlap
into a wider subject; what the wider subject lets through that no pattern matches is
left out by `Subjects.wanted`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from dispytch.routing import TopicPattern

Tokens = tuple[str, ...]


class SubjectError(ValueError):
    """A topic cannot be a NATS subject."""


@functools.lru_cache(maxsize=4096)
def check_topic(topic: str) -> str:
    """`topic` if it can be published to as a NATS subject; raise `SubjectError` if not.
    A space would break the protocol line and a wildcard cannot be published to, so both
    producers check every topic (the answers for recent topics are kept)."""
    tokens = topic.split(".")
    if any(not t or t in ("*", ">") or _has_space(t) for t in tokens):
        raise SubjectError(
            f"topic {topic!r} is not a NATS subject to publish to: its dot-separated "
            "tokens must be non-empty, without whitespace, and not '*' or '>'"
        )
    return topic


def subject(pattern: TopicPattern) -> str:
    """The subject that `pattern` listens to: `users.{user_id}` is `users.*`."""
    if pattern.delimiter != "." and not pattern.is_literal:
        raise SubjectError(
            f"topic {pattern.text!r}: NATS splits subjects on '.', so a topic pattern with "
            f"parameters or wildcards must use '.' as delimiter, not {pattern.delimiter!r}"
        )
    if pattern.is_literal:
        return check_topic(pattern.text)
    literals = [s.value for s in pattern.segments if s.kind == "literal"]
    for literal in literals:
        check_topic(literal)
    return pattern.with_wildcards("*", ".")


def root(filter_subject: str) -> str | None:
    """The first token of `filter_subject`, or None if it is a wildcard."""
    first = filter_subject.split(".", 1)[0]
    return None if first in ("*", ">") else first


@dataclass(frozen=True)
class Subjects:
    """The disjoint subjects that serve `patterns`, and whether they let through more."""

    patterns: tuple[TopicPattern, ...]
    filters: tuple[str, ...]
    exact: bool
    """True when the filters match exactly the topics some pattern matches."""

    @classmethod
    def of(cls, patterns: Iterable[TopicPattern]) -> Subjects:
        patterns = tuple(patterns)
        wanted = {subject(p) for p in patterns}
        filters = disjoint(wanted)
        return cls(patterns, tuple(sorted(filters)), exact=set(filters) <= wanted)

    def wanted(self, topic: str) -> bool:
        """Whether some pattern matches `topic` (always true when `exact`)."""
        return self.exact or any(p.match(topic) is not None for p in self.patterns)


def disjoint(subjects: Iterable[str]) -> set[str]:
    """Subjects matching at least what `subjects` match, no two of which overlap:
    a subject another one covers is dropped, and two that overlap are replaced by
    the narrowest subject covering both."""
    found = {tuple(s.split(".")) for s in subjects}
    while True:
        pair = next(((a, b) for a in found for b in found if a < b and _overlap(a, b)), None)
        if pair is None:
            return {".".join(t) for t in found}
        a, b = pair
        found -= {a, b}
        found.add(a if _covers(a, b) else b if _covers(b, a) else _join(a, b))


def _covers(wide: Tokens, narrow: Tokens) -> bool:
    """Whether every subject `narrow` matches is matched by `wide`."""
    for i, token in enumerate(wide):
        if token == ">":
            return len(narrow) > i
        if i >= len(narrow) or narrow[i] == ">":
            return False
        if token not in ("*", narrow[i]):
            return False
    return len(wide) == len(narrow)


def _overlap(a: Tokens, b: Tokens) -> bool:
    """Whether some subject matches both `a` and `b`."""
    for x, y in zip(a, b, strict=False):
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(a) == len(b)


def _join(a: Tokens, b: Tokens) -> Tokens:
    """The narrowest subject covering both `a` and `b`."""
    tokens: list[str] = []
    for x, y in zip(a, b, strict=False):
        if ">" in (x, y):
            return (*tokens, ">")
        tokens.append(x if x == y else "*")
    return tuple(tokens) if len(a) == len(b) else (*tokens[:-1], ">")


def _has_space(token: str) -> bool:
    return any(c.isspace() for c in token)

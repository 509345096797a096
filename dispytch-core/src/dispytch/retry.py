"""Retry policy: how often a failed handler is tried again, on what, and how long to wait."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` further attempts after the first, on exceptions in `retry_on` (all when None).

    The wait before retry n (1-based) is `interval * backoff**(n-1)`, capped at
    `max_interval`, then spread by +/- `jitter` (a fraction) so that many failing
    consumers do not retry in lockstep.
    """

    retries: int = 0
    retry_on: tuple[type[BaseException], ...] | None = None
    interval: float = 1.25
    backoff: float = 2.0
    max_interval: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.interval < 0 or self.max_interval < 0:
            raise ValueError("retry intervals must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction between 0 and 1, got {self.jitter}")

    @classmethod
    def of(
        cls,
        retries: int = 0,
        retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
        retry_interval: float = 1.25,
        **options: float,
    ) -> RetryPolicy:
        """Build a policy from the handler decorator's arguments (`retry_on` a class, tuple or
        list). As in Dispytch 0.10, `retry_interval` is the wait before every retry: no backoff
        and no jitter unless `options` ask for them."""
        kinds: tuple[type[BaseException], ...] | None
        if retry_on is None:
            kinds = None
        elif isinstance(retry_on, type):
            kinds = (retry_on,)
        else:
            kinds = tuple(retry_on)
        for kind in kinds or ():
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(f"retry_on takes exception classes, got {kind!r}")
        return cls(retries, kinds, retry_interval, **{"backoff": 1.0, "jitter": 0.0, **options})

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether attempt number `attempt` (1-based), which raised `error`, is tried again."""
        if attempt > self.retries:
            return False
        return self.retry_on is None or isinstance(error, self.retry_on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.interval * self.backoff ** (attempt - 1), self.max_interval)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

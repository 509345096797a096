"""How a handled message is settled."""

from __future__ import annotations

import enum


class Outcome(enum.IntEnum):
    """How a handled message is settled; the strongest outcome of its handlers wins."""

    ACK = 0
    DEAD_LETTERED = 1  # published to a dead-letter topic, then acked
    NACK = 2
    SETTLED = 3  # the broker dead-lettered it natively; nothing more to do

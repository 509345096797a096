"""Checking, before consuming, that a backend can give what a listener relies on."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from dispytch.backends.backend import Backend
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.settings import BackendSettings

logger = logging.getLogger("dispytch.backends")


class CapabilityError(RuntimeError):
    """A listener needs something its backend does not offer."""


class CapabilityWarning(UserWarning):
    """A listener's settings rely on something its backend only partly gives."""


@dataclass(frozen=True)
class ListenerNeeds:
    """What a listener relies on from its backend.

    `requires` names capabilities asked for outright; `wildcard_topics` are the handler
    topic patterns that are not literal; `dead_letter_topic` says whether failed messages
    have a dead-letter topic to go to.
    """

    group: str
    requires: frozenset[str] = frozenset()
    native_dead_letter: bool = False
    wildcard_topics: tuple[str, ...] = ()
    dead_letter_topic: bool = True


def check_requirements(backend: Backend, settings: BackendSettings, needs: ListenerNeeds) -> None:
    """Raise `CapabilityError` for what cannot work with `backend` configured by `settings`;
    warn for what works with caveats."""
    caps = backend.capabilities_for(settings)
    unknown = needs.requires - set(Capabilities.__dataclass_fields__)
    if unknown:
        raise CapabilityError(
            f"requires= names unknown capabilities {sorted(unknown)}; "
            f"known ones are {sorted(Capabilities.__dataclass_fields__)}"
        )
    missing = sorted(name for name in needs.requires if not getattr(caps, name))
    if missing:
        raise CapabilityError(_missing(backend, caps, missing, "the listener requires"))
    if needs.native_dead_letter and not caps.native_dead_letter:
        raise CapabilityError(
            _missing(backend, caps, ["native_dead_letter"], "native_dead_letter=True needs")
        )
    if needs.wildcard_topics and not caps.wildcards:
        wild = list(needs.wildcard_topics)
        raise CapabilityError(
            _missing(backend, caps, ["wildcards"], f"handler topics {wild} need")
            + "; use literal topics with this backend"
        )
    if not needs.dead_letter_topic and not needs.native_dead_letter and not caps.redelivery:
        warnings.warn(
            f"backend {backend.name!r} cannot redeliver, and the listener has no dead-letter "
            "topic: a message whose handler keeps failing is logged and dropped",
            CapabilityWarning,
            stacklevel=3,
        )
    if not caps.consumer_groups:
        logger.info(
            "backend %r has no consumer groups: every listener gets every event (group %r ignored)",
            backend.name,
            needs.group,
        )


def _missing(backend: Backend, caps: Capabilities, names: list[str], who: str) -> str:
    offered = ", ".join(caps.offered()) or "none"
    return (
        f"{who} {', '.join(names)}, which backend {backend.name!r} does not offer "
        f"(it offers: {offered})"
    )

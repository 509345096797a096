"""Settings of the memory backend."""

from __future__ import annotations

from urllib.parse import urlsplit

from typing_extensions import Self

from dispytch.backends.settings import BackendSettings


class MemorySettings(BackendSettings):
    """`broker` names the in-process broker; emitters and listeners sharing it talk."""

    broker: str = "default"
    """The in-process broker's name: `memory://name`; emitters and listeners naming the same
    broker share its topics and groups."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        """`memory://` is the default broker, `memory://name` another one."""
        name = urlsplit(url).netloc
        return cls(broker=name) if name else cls()

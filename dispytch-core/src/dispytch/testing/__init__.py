"""Testing tools: `Probe` and `running` for any test, and the backend conformance kit
(`BackendUnderTest`, `ConformanceSuite`), which needs pytest and is imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispytch.testing.probe import Probe, running

if TYPE_CHECKING:
    from dispytch.testing.conformance import BackendUnderTest, ConformanceSuite

__all__ = ["BackendUnderTest", "ConformanceSuite", "Probe", "running"]

_CONFORMANCE_KIT = {"BackendUnderTest", "ConformanceSuite"}


def __getattr__(name: str) -> Any:
    if name in _CONFORMANCE_KIT:
        from dispytch.testing import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Testing tools: `TestClient` (an app or listeners on a private in-memory broker, with what
they did recorded), `Probe` and `running` for any test, and the backend conformance kit
(`BackendUnderTest`, `ConformanceSuite`), which needs pytest and is imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispytch.testing.client import TestClient
from dispytch.testing.probe import Probe, running
from dispytch.testing.recording import CallRecord, DeadLetterRecord, EmittedEvents

if TYPE_CHECKING:
    from dispytch.testing.conformance import BackendUnderTest, ConformanceSuite

__all__ = [
    "BackendUnderTest",
    "CallRecord",
    "ConformanceSuite",
    "DeadLetterRecord",
    "EmittedEvents",
    "Probe",
    "TestClient",
    "running",
]

_CONFORMANCE_KIT = {"BackendUnderTest", "ConformanceSuite"}


def __getattr__(name: str) -> Any:
    if name in _CONFORMANCE_KIT:
        from dispytch.testing import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

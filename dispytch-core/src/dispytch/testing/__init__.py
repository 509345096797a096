"""Testing tools: the backend conformance kit, for our backends and third parties' alike."""

from dispytch.testing.conformance import BackendUnderTest, ConformanceSuite
from dispytch.testing.probe import Probe, running

__all__ = ["BackendUnderTest", "ConformanceSuite", "Probe", "running"]

"""The memory backend runs the conformance suite like any other backend."""

import pytest

from dispytch.backends.memory import MemoryEventConfig
from dispytch.testing import BackendUnderTest, ConformanceSuite


class TestMemoryConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self) -> BackendUnderTest:
        return BackendUnderTest("memory", key_config=lambda key: MemoryEventConfig(key=key))

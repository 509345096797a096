"""Both NATS modes run the Dispytch conformance suite against a real nats-server, each
held to the capabilities it declares: JetStream, core NATS by name, and core NATS chosen
in settings."""

from __future__ import annotations

from typing import Any

import pytest

from dispytch.testing import BackendUnderTest, ConformanceSuite

pytestmark = pytest.mark.nats


class TestNatsJetStreamConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, jetstream_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest("nats", jetstream_settings, timeout=15.0)


class TestNatsCoreConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, core_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest("nats-core", core_settings, timeout=15.0)


class TestNatsCoreModeConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, core_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest("nats", {**core_settings, "mode": "core"}, timeout=15.0)

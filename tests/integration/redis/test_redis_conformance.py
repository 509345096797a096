"""Both Redis modes run the Dispytch conformance suite against a real server, each held
to the capabilities it declares: streams, pub/sub by name, and pub/sub chosen in settings."""

from __future__ import annotations

from typing import Any

import pytest

from dispytch.testing import BackendUnderTest, ConformanceSuite

pytestmark = pytest.mark.redis


class TestRedisStreamsConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, streams_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest("redis", {**streams_settings, "mode": "streams"}, timeout=15.0)


class TestRedisPubSubConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, pubsub_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest("redis-pubsub", pubsub_settings, timeout=15.0)


class TestRedisPubSubModeConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, pubsub_settings: dict[str, Any]) -> BackendUnderTest:
        return BackendUnderTest("redis", {**pubsub_settings, "mode": "pubsub"}, timeout=15.0)

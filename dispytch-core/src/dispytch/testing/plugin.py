"""The pytest plugin that ships with dispytch-core (entry point `pytest11`).

It registers the `conformance` marker; the suite itself is `ConformanceSuite`,
which a backend's test module subclasses.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: the Dispytch backend conformance suite (dispytch.testing)"
    )

"""Fixtures for plugin tests: the third-party `dispytch-sqlite` distribution, pip-installed
into the running environment the way a user would install it."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispytch.backends.registry import registry

SQLITE_PLUGIN = Path(__file__).parent / "dispytch-sqlite"


@pytest.fixture(scope="session")
def sqlite_plugin() -> Iterator[None]:
    """Install `dispytch-sqlite` (unless it is there) and make discovery see it."""
    try:
        importlib.metadata.version("dispytch-sqlite")
    except importlib.metadata.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", str(SQLITE_PLUGIN)],
            check=True,
        )
        importlib.invalidate_caches()
    registry.cache_clear()
    yield
    registry.cache_clear()

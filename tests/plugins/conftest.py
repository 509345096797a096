"""Fixtures for plugin tests: distributions laid out on sys.path with `dispytch` entry points.
The third-party `dispytch-sqlite` distribution is installed by the `sqlite_plugin` fixture of
tests/conftest.py."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dispytch.backends.registry import registry

Installer = Callable[[str, dict[str, str], dict[str, str]], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installer]:
    """Lay out a distribution with `dispytch` entry points and plugin modules on sys.path."""
    created: list[str] = []

    def install_(dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[dispytch]\n{lines}\n")
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(source)
            created.append(module)
        registry.cache_clear()

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install_
    for module in created:
        sys.modules.pop(module, None)
    registry.cache_clear()


@pytest.fixture
def limited(install: Installer) -> str:
    """An installed backend named `limited` that offers consumer groups and nothing else."""
    install(
        "dispytch-limited",
        {"limited": "limited_plugin"},
        {"limited_plugin": _plugin_source("limited", "consumer_groups=True")},
    )
    return "limited"


@pytest.fixture
def plugin_source() -> Callable[..., str]:
    """Source of a plugin module registering backend `name` on the memory broker."""
    return _plugin_source


def _plugin_source(name: str, capabilities: str = "") -> str:
    return f"""
from dispytch.backends import Backend, Capabilities, hookimpl
from dispytch.backends.memory.plugin import _consumer, _producer
from dispytch.backends.memory.settings import MemorySettings

@hookimpl
def dispytch_register_backends(register):
    register(Backend({name!r}, MemorySettings, _producer, _consumer,
                     Capabilities({capabilities}), ({name!r},)))
"""

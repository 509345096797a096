"""Lazy exports for a package's `__init__`: its public names are imported from their
submodules on first use (PEP 562), so importing the package imports none of them.

A backend distribution's entry point imports its package; with lazy exports, loading the
plugin does not import the broker's client library, only using the backend does.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that imports each name listed under a
    submodule of `exports` (`{"consumer": ["KafkaConsumer"]}`) when it is first asked for."""
    submodule_of = {name: submodule for submodule, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in submodule_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{submodule_of[name]}")
        value = getattr(module, name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    return __getattr__

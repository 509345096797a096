"""Finding backends: builtin plugins and entry points in the `dispytch` group, through pluggy.

The registry is built lazily, once, by `registry()`; tests build their own with
`BackendRegistry.discover(...)`. Environment variables:

- `DISPYTCH_DISABLE_PLUGIN_AUTOLOAD=1`: load no entry points (builtin backends stay).
- `DISPYTCH_PLUGINS=kafka,redis`: load only these entry points (by entry-point or
  distribution name).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata as metadata
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, replace

import pluggy

from dispytch.backends import hookspecs
from dispytch.backends.backend import Backend

ENTRY_POINT_GROUP = "dispytch"
DISABLE_AUTOLOAD_ENV = "DISPYTCH_DISABLE_PLUGIN_AUTOLOAD"
ALLOW_LIST_ENV = "DISPYTCH_PLUGINS"
BUILTIN_PLUGINS = ("dispytch.backends.memory.plugin",)
OFFICIAL_BACKENDS = {
    "kafka": "dispytch-core[kafka]",
    "rabbitmq": "dispytch-core[rabbitmq]",
    "amqp": "dispytch-core[rabbitmq]",
    "redis": "dispytch-core[redis]",
}


class BackendError(LookupError):
    """A backend cannot be found or chosen."""


@dataclass(frozen=True)
class PluginFailure:
    """An entry point that could not be loaded; every other backend still works."""

    entry_point: str
    distribution: str | None
    version: str | None
    error: str

    def __str__(self) -> str:
        source = (
            f"{self.distribution} {self.version}"
            if self.distribution
            else "an unknown distribution"
        )
        return f"plugin {self.entry_point!r} from {source} failed to load: {self.error}"


@dataclass(frozen=True)
class _Source:
    distribution: str | None
    version: str | None


class BackendRegistry:
    """The backends known to this process, by name and by URL scheme."""

    def __init__(self) -> None:
        self._by_name: dict[str, Backend] = {}
        self._conflicts: dict[str, list[Backend]] = {}
        self.failures: list[PluginFailure] = []

    @classmethod
    def discover(
        cls,
        *,
        autoload: bool | None = None,
        allow: Collection[str] | None = None,
        plugins: Iterable[object] = (),
    ) -> BackendRegistry:
        """Load builtin plugins, then entry points (unless disabled), then `plugins`.

        `autoload` and `allow` default to the environment variables above.
        """
        if autoload is None:
            autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").lower() not in ("1", "true", "yes")
        if allow is None and os.environ.get(ALLOW_LIST_ENV):
            allow = {n.strip() for n in os.environ[ALLOW_LIST_ENV].split(",") if n.strip()}
        registry = cls()
        manager = pluggy.PluginManager("dispytch")
        manager.add_hookspecs(hookspecs)
        sources: dict[int, _Source] = {}
        core = _Source("dispytch-core", _version("dispytch-core"))
        for name in BUILTIN_PLUGINS:
            module = importlib.import_module(name)
            manager.register(module, name)
            sources[id(module)] = core
        if autoload:
            registry._load_entry_points(manager, sources, allow)
        for plugin in plugins:
            manager.register(plugin)
            sources[id(plugin)] = _Source(getattr(plugin, "__name__", None), None)
        for impl in manager.hook.dispytch_register_backends.get_hookimpls():
            source = sources.get(id(impl.plugin), _Source(None, None))
            impl.function(register=registry._registrar(source))
        return registry

    def _load_entry_points(
        self,
        manager: pluggy.PluginManager,
        sources: dict[int, _Source],
        allow: Collection[str] | None,
    ) -> None:
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            source = _Source(
                dist.metadata["Name"] if dist else None, dist.version if dist else None
            )
            if allow is not None and not {entry_point.name, source.distribution} & set(allow):
                continue
            if entry_point.value in BUILTIN_PLUGINS:
                continue
            try:
                plugin = entry_point.load()
                if manager.is_registered(plugin):
                    continue
                manager.register(plugin, f"{source.distribution}:{entry_point.name}")
            except Exception as exc:
                self.failures.append(
                    PluginFailure(
                        entry_point.name,
                        source.distribution,
                        source.version,
                        f"{type(exc).__name__}: {exc}",
                    )
                )
                continue
            sources[id(plugin)] = source

    def _registrar(self, source: _Source) -> Callable[[Backend], None]:
        def register(backend: Backend) -> None:
            self.add(replace(backend, distribution=source.distribution, version=source.version))

        return register

    def add(self, backend: Backend) -> None:
        """Register `backend`; a second backend under a taken name or scheme is a conflict."""
        for key in dict.fromkeys((backend.name, *backend.schemes)):
            holder = self._by_name.get(key)
            if key in self._conflicts:
                self._conflicts[key].append(backend)
            elif holder is not None and holder.distribution != backend.distribution:
                self._conflicts[key] = [holder, backend]
                del self._by_name[key]
            else:
                self._by_name[key] = backend

    def get(self, name: str) -> Backend:
        """The backend registered under `name` or URL scheme `name`."""
        if name in self._conflicts:
            claims = " and ".join(
                f"{b.distribution or 'an unknown distribution'} (backend {b.name!r})"
                for b in self._conflicts[name]
            )
            raise BackendError(
                f"backend name {name!r} is claimed by {claims}; uninstall one of them, "
                f"or restrict loading with {ALLOW_LIST_ENV}"
            )
        try:
            return self._by_name[name]
        except KeyError:
            raise BackendError(self._unknown(name)) from None

    def __iter__(self) -> Iterator[Backend]:
        return iter(dict.fromkeys(self._by_name.values()))

    @property
    def conflicts(self) -> dict[str, list[Backend]]:
        return dict(self._conflicts)

    def _unknown(self, name: str) -> str:
        installed = sorted({b.name for b in self})
        lines = [
            f"no backend named {name!r}. Installed backends: {', '.join(installed) or 'none'}."
        ]
        close = difflib.get_close_matches(name, [*self._by_name, *OFFICIAL_BACKENDS], n=1)
        if close:
            lines.append(f"Did you mean {close[0]!r}?")
        wanted = name if name in OFFICIAL_BACKENDS else (close[0] if close else None)
        if wanted in OFFICIAL_BACKENDS and wanted not in self._by_name:
            lines.append(f'To install it: pip install "{OFFICIAL_BACKENDS[wanted]}"')
        lines.extend(str(failure) for failure in self.failures)
        return " ".join(lines)


@functools.lru_cache(maxsize=1)
def registry() -> BackendRegistry:
    """The process-wide registry, discovered on first use."""
    return BackendRegistry.discover()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None

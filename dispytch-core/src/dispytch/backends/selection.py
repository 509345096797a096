"""Choosing a backend by a string: a name with settings, a URL, or a config mapping.

From a mapping (the process environment, or a settings dict), these keys are read:

- `DISPYTCH_BACKEND`: a backend name (`kafka`) or a URL (`kafka://host:9092`);
- `DISPYTCH_BACKEND_<FIELD>`: one setting of that backend's settings model
  (`DISPYTCH_BACKEND_CLIENT_ID=billing`), lower-cased to the field name;
- `DISPYTCH_GROUP`: the listener's consumer group.

A nested mapping `{"backend": ..., "settings": {...}, "group": ...}` works too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from dispytch.backends.backend import Backend
from dispytch.backends.registry import BackendError, BackendRegistry, registry
from dispytch.backends.settings import BackendSettings, redact_url

PREFIX = "DISPYTCH_"


class BackendSettingsError(ValueError):
    """Settings given for a backend do not fit its settings model."""


def select_backend(
    spec: str,
    settings: Mapping[str, Any] | None = None,
    *,
    backends: BackendRegistry | None = None,
) -> tuple[Backend, BackendSettings]:
    """The backend named by `spec` (a name or a URL) and its validated settings."""
    backends = backends or registry()
    is_url = "://" in spec
    backend = backends.get(urlsplit(spec).scheme if is_url else spec)
    try:
        values = dict(settings or {})
        if is_url:
            values = {**backend.settings.from_url(spec).model_dump(exclude_unset=True), **values}
        return backend, backend.settings.model_validate(values)
    except ValidationError as exc:
        where = f"URL {redact_url(spec)}" if is_url else "the settings given"
        raise BackendSettingsError(
            f"invalid settings for backend {backend.name!r} from {where}:\n{exc}\n"
            f"Fields it takes: {', '.join(backend.settings.model_fields)}"
        ) from None


def settings_from_config(config: Mapping[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    """(backend name or URL, settings, group) from an environment-like or nested mapping."""
    if "backend" in config:
        spec, settings, group = (
            config["backend"],
            dict(config.get("settings") or {}),
            config.get("group"),
        )
    else:
        spec = config.get(f"{PREFIX}BACKEND")
        settings_prefix = f"{PREFIX}BACKEND_"
        settings = {
            key[len(settings_prefix) :].lower(): value
            for key, value in config.items()
            if key.startswith(settings_prefix)
        }
        group = config.get(f"{PREFIX}GROUP")
    if not spec:
        raise BackendError(
            f"no backend configured: set {PREFIX}BACKEND to a backend name or URL "
            "(or 'backend' in a settings mapping)"
        )
    return str(spec), settings, group

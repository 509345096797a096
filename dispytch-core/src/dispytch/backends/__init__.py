"""Backends as plugins: registration types, the hook, discovery and selection by string."""

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.hookspecs import hookimpl
from dispytch.backends.registry import BackendError, BackendRegistry, PluginFailure, registry
from dispytch.backends.requirements import CapabilityError, CapabilityWarning
from dispytch.backends.selection import BackendSettingsError, select_backend
from dispytch.backends.settings import BackendSettings, SecretURL, redact_url

__all__ = [
    "Backend",
    "BackendError",
    "BackendRegistry",
    "BackendSettings",
    "BackendSettingsError",
    "Capabilities",
    "CapabilityError",
    "CapabilityWarning",
    "PluginFailure",
    "SecretURL",
    "Subscription",
    "hookimpl",
    "redact_url",
    "registry",
    "select_backend",
]

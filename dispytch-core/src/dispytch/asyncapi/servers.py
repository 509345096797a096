"""Servers from backend settings, with every credential left out.

Only the scheme, host, port and path of a connection URL are kept: the user, the
password and the query (which may carry tokens) never reach the document.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from dispytch.backends.backend import Backend

_SASL_SCHEMES = {"PLAIN": "plain", "SCRAM-SHA-256": "scramSha256", "SCRAM-SHA-512": "scramSha512"}


def server(backend: Backend, settings: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Server Object for `backend` configured with `settings`, and the Security Scheme
    Object its credentials call for (None when it connects without any)."""
    url = _url(settings)
    if url is not None:
        found = _from_url(url, backend.name)
    elif getattr(settings, "bootstrap_servers", None):
        found = _kafka(settings)
    else:
        host = getattr(settings, "host", None) or getattr(settings, "broker", None)
        found = ({"host": str(host or "localhost"), "protocol": backend.name}, None)
    description = backend.description or f"the {backend.name} backend"
    return {**found[0], "description": description}, found[1]


def _url(settings: Any) -> str | None:
    for field in ("url", "endpoint_url"):
        value = getattr(settings, field, None)
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, str) and "://" in value:
            return value
    return None


def _from_url(url: str, backend: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A server from one URL, or from several comma-separated ones (a cluster)."""
    urls = [urlsplit(part.strip()) for part in url.split(",") if part.strip()]
    hosts = []
    for parts in urls:
        host = parts.hostname or "localhost"
        hosts.append(f"{host}:{parts.port}" if parts.port is not None else host)
    found: dict[str, Any] = {"host": ",".join(hosts), "protocol": urls[0].scheme or backend}
    path = urls[0].path
    if len(urls) == 1 and path and path != "/":
        found["pathname"] = path
    scheme = None
    if any(parts.username or parts.password for parts in urls):
        scheme = {"type": "userPassword", "description": "user and password from the URL"}
    return found, scheme


def _kafka(settings: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    protocol = str(getattr(settings, "protocol", None) or "PLAINTEXT")
    found = {
        "host": ",".join(settings.bootstrap_servers),
        "protocol": "kafka-secure" if "SSL" in protocol else "kafka",
    }
    mechanism = getattr(settings, "sasl_mechanism", None)
    scheme = None
    if mechanism in _SASL_SCHEMES:
        scheme = {"type": _SASL_SCHEMES[mechanism], "description": f"SASL {mechanism}"}
    elif "SSL" in protocol and getattr(settings, "ssl_certfile", None):
        scheme = {"type": "X509", "description": "TLS client certificate"}
    return found, scheme

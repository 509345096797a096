"""Loading a backend plugin imports none of the broker client libraries: a service that uses
one backend does not hold every installed backend's client in memory. Each check runs in a
fresh interpreter, as a service starts, since this process has imported them all already."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import subprocess
import sys
import textwrap

import pytest

CLIENTS = {
    "dispytch-kafka": ("dispytch_kafka", "KafkaConsumer", "aiokafka"),
    "dispytch-rabbitmq": ("dispytch_rabbitmq", "RabbitMQConsumer", "aio_pika"),
    "dispytch-redis": ("dispytch_redis", "RedisStreamConsumer", "redis"),
    "dispytch-nats": ("dispytch_nats", "JetStreamConsumer", "nats"),
    "dispytch-sqs": ("dispytch_sqs", "SQSConsumer", "botocore"),
}
"""Each backend distribution: its package, a name it exports, and its client library."""

CLIENT_LIBRARIES = frozenset(
    ["aiokafka", "aio_pika", "aiormq", "pamqp", "redis", "nats", "aiobotocore", "botocore"]
)
"""Top-level modules of the client libraries and of the libraries they import."""


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


INSTALLED = [dist for dist in CLIENTS if _installed(dist)]


def _run(script: str) -> dict[str, list[str]]:
    """Run `script` in a fresh interpreter; it prints a JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return result


def _loaded_clients(modules: list[str]) -> set[str]:
    return {m.partition(".")[0] for m in modules} & CLIENT_LIBRARIES


@pytest.mark.skipif(not INSTALLED, reason="no backend distribution is installed")
def test_loading_every_installed_backend_imports_no_client_library() -> None:
    found = _run(
        f"""
        import json, sys
        from dispytch import EventListener
        from dispytch.backends import registry

        EventListener.from_url("memory://", group="g")
        backends = list(registry())
        for backend in backends:
            if backend.distribution in {sorted(CLIENTS)!r}:
                backend.capabilities_for(backend.settings())
        print(json.dumps({{
            "distributions": sorted({{b.distribution or "" for b in backends}}),
            "failures": [str(f) for f in registry().failures],
            "modules": sorted(sys.modules),
        }}))
        """
    )
    assert found["failures"] == []
    assert set(INSTALLED) <= set(found["distributions"]), "every installed backend was loaded"
    assert _loaded_clients(found["modules"]) == set()


@pytest.mark.parametrize("distribution", list(CLIENTS))
def test_a_backend_package_imports_its_client_when_a_name_is_first_used(
    distribution: str,
) -> None:
    if distribution not in INSTALLED:
        pytest.skip(f"{distribution} is not installed")
    package, name, client = CLIENTS[distribution]
    found = _run(
        f"""
        import json, sys
        import {package}

        before = sorted(sys.modules)
        from {package} import {name}
        exported = [n for n in {package}.__all__ if getattr({package}, n, None) is None]
        print(json.dumps({{
            "before": before,
            "after": sorted(sys.modules),
            "module": [{name}.__module__],
            "missing": exported,
        }}))
        """
    )
    assert _loaded_clients(found["before"]) == set()
    assert client in found["after"], f"using {name} imports {client}"
    assert found["module"][0].startswith(f"{package}.")
    assert found["missing"] == [], "every name of __all__ is importable"

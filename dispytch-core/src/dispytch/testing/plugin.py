"""The pytest plugin that ships with dispytch-core (entry point `pytest11`).

It registers the `conformance` marker (the suite itself is `ConformanceSuite`, which a
backend's test module subclasses) and offers the `dispytch_client` fixture. The fixture
is a plain factory, so it works under pytest-asyncio and anyio's pytest plugin alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dispytch.app import App
    from dispytch.listener.listener import EventListener
    from dispytch.testing.client import TestClient

ClientFactory = Callable[..., "TestClient"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: the Dispytch backend conformance suite (dispytch.testing)"
    )


@pytest.fixture
def dispytch_client() -> Iterator[ClientFactory]:
    """Make `TestClient`s for this test: `async with dispytch_client(app_or_listener,
    emitters=[...], overrides={...}) as client:`. A client still running when the test
    ends fails the test, since it was entered and never left."""
    from dispytch.testing.client import TestClient

    made: list[TestClient] = []

    def make(target: App | EventListener | Sequence[EventListener], **options: Any) -> TestClient:
        client = TestClient(target, **options)
        made.append(client)
        return client

    yield make
    left_running = [client for client in made if client.running]
    if left_running:
        pytest.fail(
            f"{len(left_running)} TestClient(s) were entered and never left; "
            "use `async with dispytch_client(...) as client:`"
        )

"""Fixtures for the unit tests: a user's own wire (see seed_fakes) and fresh memory brokers."""

import pytest
from seed_fakes import Wire
from support import fresh


@pytest.fixture
def wire() -> Wire:
    """Where the user's own producer sends and consumer reads."""
    return Wire()


@pytest.fixture
def dlq_wire() -> Wire:
    """A separate wire for dead letters, so they are not consumed again."""
    return Wire()


@pytest.fixture
def memory_url() -> str:
    """A `memory://` URL naming a broker no other test uses."""
    return f"memory://{fresh('broker')}"

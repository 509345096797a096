"""A listener that needs what its backend cannot give hears so at start, not in production."""

from __future__ import annotations

import pytest

from dispytch import EventListener
from dispytch.backends import CapabilityError, CapabilityWarning
from dispytch.testing import running


def listener_on(backend: str, topic: str = "orders", **options: object) -> EventListener:
    listener = EventListener.from_backend(backend, group="g", listener_options=options)

    @listener.handler(topic=topic, event="*")
    async def handle() -> None: ...

    return listener


async def test_required_capabilities_are_checked(limited: str) -> None:
    listener = listener_on(limited, requires={"persistent", "redelivery"})
    with pytest.raises(CapabilityError, match="persistent, redelivery") as error:
        await listener.listen()
    assert "it offers: consumer_groups" in str(error.value)


async def test_unknown_capability_names_are_reported(limited: str) -> None:
    with pytest.raises(CapabilityError, match=r"unknown capabilities \['durable'\]"):
        await listener_on(limited, requires={"durable"}).listen()


async def test_wildcard_topics_need_wildcard_support(limited: str) -> None:
    with pytest.raises(CapabilityError, match=r"orders\.\{id\}"):
        await listener_on(limited, topic="orders.{id}").listen()


async def test_native_dead_lettering_needs_support(limited: str) -> None:
    with pytest.raises(CapabilityError, match="native_dead_letter"):
        await listener_on(limited, native_dead_letter=True).listen()


async def test_no_dead_letters_on_a_backend_that_cannot_redeliver_warns(limited: str) -> None:
    with pytest.warns(CapabilityWarning, match="cannot redeliver"):
        async with running(listener_on(limited, dead_letter_topic=None)) as listener:
            assert listener.consumer is not None


async def test_a_backend_offering_everything_starts(limited: str) -> None:
    listener = listener_on("memory", topic="orders.{id}", requires={"persistent", "redelivery"})
    async with running(listener):
        assert listener.consumer is not None

"""The demo: an emitter and a listener exchanging typed events on the memory backend.

Run it with `dispytch demo`. It shows handlers with dependencies, topic segments,
a flaky handler that succeeds on retry, and a broken one whose event is retried,
then dead-lettered and picked up by a dead-letter handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from pydantic import BaseModel

from dispytch import (
    App,
    DeadLetter,
    Dependency,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    TopicSegment,
)
from dispytch.dead_letter import DEAD_LETTER_EVENT
from dispytch.testing import Probe, running


class OrderPlaced(EventBase):
    __topic__ = "shop.{region}.orders"
    __event_type__ = "order_placed"

    order_id: int
    region: str
    amount: float


class Order(BaseModel):
    order_id: int
    amount: float


class Ledger:
    """A stand-in for a real service, opened and closed around each event."""

    def __init__(self) -> None:
        self.total = 0.0

    def record(self, amount: float) -> None:
        self.total += amount


LEDGER = Ledger()


async def ledger() -> AsyncIterator[Ledger]:
    print("    [ledger] opened")
    yield LEDGER
    print("    [ledger] closed")


def tax_rate(region: Annotated[str, TopicSegment()]) -> float:
    return {"eu": 0.2, "us": 0.07}.get(region, 0.0)


def build_listener(done: Probe) -> EventListener:
    listener = EventListener.from_url(
        "memory://demo", group="billing", listener_options={"ordered": False}
    )
    flaky_calls: dict[int, int] = {}

    @listener.handler(topic="shop.{region}.orders", event="order_placed")
    async def bill(
        event: Event[Order],
        region: Annotated[str, TopicSegment()],
        rate: Annotated[float, Dependency(tax_rate)],
        books: Annotated[Ledger, Dependency(ledger)],
    ) -> None:
        gross = event.body.amount * (1 + rate)
        books.record(gross)
        print(f"  billed order {event.body.order_id} in {region}: {gross:.2f} (tax {rate:.0%})")
        done.add(("billed", event.body.order_id))

    @listener.handler(topic="shop.*.orders", event="order_placed", retries=2, retry_interval=0.05)
    async def notify(event: Event[Order]) -> None:
        calls = flaky_calls[event.body.order_id] = flaky_calls.get(event.body.order_id, 0) + 1
        if event.body.order_id == 2 and calls == 1:
            print("  notify: mail server hiccup for order 2, will retry")
            raise ConnectionError("mail server hiccup")
        if event.body.order_id == 3:
            print(f"  notify: order 3 has no customer e-mail (attempt {calls} of 3)")
            raise LookupError("order 3 has no customer e-mail")
        print(f"  notified customer of order {event.body.order_id} (attempt {calls})")
        done.add(("notified", event.body.order_id))

    @listener.handler(topic="shop.{region}.orders.dlq", event=DEAD_LETTER_EVENT)
    async def dead_letters(event: Event[DeadLetter]) -> None:
        letter = event.body
        print(
            f"  dead letter from {letter.topic}: {letter.error_type}: {letter.error_message} "
            f"after {letter.attempts} attempt(s) in {letter.handler}"
        )
        done.add(("dead-lettered", letter.topic))

    return listener


def build_app(done: Probe | None = None) -> App:
    """The demo as an App: its listener and emitter, and the event it emits
    (`dispytch docs gen dispytch.demo:build_app --factory` documents it)."""
    return App(
        [build_listener(done or Probe())],
        [EventEmitter.from_url("memory://demo")],
        emits=[OrderPlaced],
    )


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    done = Probe()
    listener = build_listener(done)
    print("Dispytch demo on the memory backend\n")
    async with running(listener), EventEmitter.from_url("memory://demo") as emitter:
        for order_id, region, amount in [(1, "eu", 100.0), (2, "us", 40.0), (3, "eu", 15.5)]:
            print(f"-> emit order_placed #{order_id} to shop.{region}.orders")
            await emitter.emit(OrderPlaced(order_id=order_id, region=region, amount=amount))
        await done.wait_for(6, timeout=10)
    print(f"\nledger total: {LEDGER.total:.2f}; listener stopped gracefully.")


if __name__ == "__main__":
    asyncio.run(main())

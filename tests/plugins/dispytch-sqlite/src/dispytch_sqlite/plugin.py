"""Registers the `sqlite` backend through Dispytch's entry point group."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from dispytch.backends import Backend, Capabilities, Subscription, hookimpl
from dispytch_sqlite.store import Store
from dispytch_sqlite.transport import SQLiteConsumer, SQLiteProducer, SQLiteSettings


@cache
def _store(path: str) -> Store:
    return Store(path)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register `sqlite` (URL `sqlite:///path/to/file.db`)."""
    register(
        Backend(
            name="sqlite",
            settings=SQLiteSettings,
            create_producer=_producer,
            create_consumer=_consumer,
            capabilities=Capabilities(
                persistent=True,
                consumer_groups=True,
                redelivery=True,
                ordering=True,
                headers=True,
                wildcards=True,
            ),
            schemes=("sqlite",),
            description="Messages in an SQLite file.",
        )
    )


def _producer(settings: SQLiteSettings) -> SQLiteProducer:
    return SQLiteProducer(_store(settings.path))


def _consumer(settings: SQLiteSettings, subscription: Subscription) -> SQLiteConsumer:
    return SQLiteConsumer(
        _store(settings.path), settings, subscription.group, subscription.patterns
    )

"""Registers the `sqs` backend with Dispytch (entry point group `dispytch`).

What it offers follows its settings: FIFO queues keep order per key, a dead-letter
queue (`max_receive_count`) makes dead-lettering native, and `max_message_size` less
room for attributes is the declared payload limit.

The factories import the modules that use aiobotocore when they are called, so loading the
plugin does not import aiobotocore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.hookspecs import hookimpl
from dispytch_sqs.settings import SQSSettings

if TYPE_CHECKING:
    from dispytch_sqs.consumer import SQSConsumer
    from dispytch_sqs.producer import SQSProducer


def sqs_capabilities(settings: SQSSettings) -> Capabilities:
    """What the backend offers with `settings`."""
    return Capabilities(
        persistent=True,
        consumer_groups=True,
        redelivery=True,
        ordering=settings.fifo,
        headers=True,
        wildcards=False,
        native_dead_letter=settings.max_receive_count is not None,
        max_payload_bytes=settings.max_payload_bytes,
        max_in_flight_per_key=1 if settings.fifo else None,
    )


def sqs_producer(settings: SQSSettings) -> SQSProducer:
    from dispytch_sqs.producer import SQSProducer

    return SQSProducer.from_settings(settings)


def sqs_consumer(settings: SQSSettings, subscription: Subscription) -> SQSConsumer:
    from dispytch_sqs.consumer import SQSConsumer

    return SQSConsumer.from_settings(settings, subscription)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register the `sqs` backend, also selected by `sqs://` URLs."""
    register(
        Backend(
            name="sqs",
            settings=SQSSettings,
            create_producer=sqs_producer,
            create_consumer=sqs_consumer,
            capabilities=sqs_capabilities(SQSSettings()),
            capabilities_by_settings=sqs_capabilities,
            schemes=("sqs",),
            install="dispytch-sqs",
            description="Amazon SQS queues per group, fed by SNS topics, through aiobotocore",
        )
    )

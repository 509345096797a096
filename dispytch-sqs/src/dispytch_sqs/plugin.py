"""Registers the `sqs` backend with Dispytch (entry point group `dispytch`).

What it offers follows its settings: FIFO queues keep order per key, a dead-letter
queue (`max_receive_count`) makes dead-lettering native, and `max_message_size` less
room for attributes is the declared payload limit.
"""

from __future__ import annotations

from collections.abc import Callable

from dispytch.backends.backend import Backend
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.hookspecs import hookimpl
from dispytch_sqs.consumer import SQSConsumer
from dispytch_sqs.producer import SQSProducer
from dispytch_sqs.settings import SQSSettings


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


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register the `sqs` backend, also selected by `sqs://` URLs."""
    register(
        Backend(
            name="sqs",
            settings=SQSSettings,
            create_producer=SQSProducer.from_settings,
            create_consumer=SQSConsumer.from_settings,
            capabilities=sqs_capabilities(SQSSettings()),
            capabilities_by_settings=sqs_capabilities,
            schemes=("sqs",),
            install="dispytch-sqs",
            description="Amazon SQS queues per group, fed by SNS topics, through aiobotocore",
        )
    )

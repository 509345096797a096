"""The Amazon SQS backend for Dispytch, built on aiobotocore.

Topics are SNS topics; each listener group has one SQS queue subscribed to the topics
its handlers listen to, so every group gets every event and a group's listeners share
them. See `docs/backends/sqs.md`.

Its names are imported on first use, so that loading the plugin does not import aiobotocore.
"""

from typing import TYPE_CHECKING

from dispytch._lazy import lazy_exports

__all__ = ["SQSConsumer", "SQSEventConfig", "SQSProducer", "SQSPublishError", "SQSSettings"]

if TYPE_CHECKING:
    from dispytch_sqs.config import SQSEventConfig
    from dispytch_sqs.consumer import SQSConsumer
    from dispytch_sqs.producer import SQSProducer, SQSPublishError
    from dispytch_sqs.settings import SQSSettings
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "config": ["SQSEventConfig"],
            "consumer": ["SQSConsumer"],
            "producer": ["SQSProducer", "SQSPublishError"],
            "settings": ["SQSSettings"],
        },
    )

"""The Amazon SQS backend for Dispytch, built on aiobotocore.

Topics are SNS topics; each listener group has one SQS queue subscribed to the topics
its handlers listen to, so every group gets every event and a group's listeners share
them. See `docs/backends/sqs.md`.
"""

from dispytch_sqs.config import SQSEventConfig
from dispytch_sqs.consumer import SQSConsumer
from dispytch_sqs.producer import SQSProducer, SQSPublishError
from dispytch_sqs.settings import SQSSettings

__all__ = ["SQSConsumer", "SQSEventConfig", "SQSProducer", "SQSPublishError", "SQSSettings"]

"""The topic one emitter's replies to its requests arrive on, deleted when the emitter stops.

The emitter reads it in a consumer group of its own (named after the topic). Kafka keeps
that group's committed offsets until `offsets.retention.minutes` (7 days by default)
after it empties; aiokafka has no call to delete a group. A topic left by an emitter
that died keeps its replies for the topic's `retention.ms`.
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]

from dispytch.backends.backend import Subscription
from dispytch.routing import TopicPattern
from dispytch_kafka.consumer import KafkaConsumer
from dispytch_kafka.settings import KafkaSettings

logger = logging.getLogger("dispytch.kafka")


class KafkaReplyConsumer(KafkaConsumer):
    """Reads the replies topic `topic`; `stop()` leaves the group, then deletes the topic."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        super().__init__(
            settings=settings, subscription=Subscription(topic, (TopicPattern(topic),))
        )
        self.topic = topic

    async def stop(self) -> None:
        await super().stop()
        admin = AIOKafkaAdminClient(**self._settings.client_options())
        try:
            await admin.start()
            await admin.delete_topics([self.topic])
        except Exception as exc:
            logger.warning("could not delete the replies topic %s: %r", self.topic, exc)
        finally:
            await admin.close()


def reply_consumer(settings: KafkaSettings, topic: str) -> KafkaReplyConsumer:
    """The consumer of an emitter's replies to its requests, sent to `topic`."""
    return KafkaReplyConsumer(settings, topic)

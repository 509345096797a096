"""The SNS topics and SQS queues behind a group, created on first use.

A Dispytch topic is an SNS topic. A listener group is one SQS queue, subscribed with
raw message delivery to the SNS topic of every topic its handlers listen to: SNS copies
each event into the queue of every group (fan-out), and the listeners of one group
take turns on their queue. Creating is idempotent, so every process of a group does it
at start; subscriptions are added, never removed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dispytch_sqs.naming import dead_letter_queue_name, queue_name, topic_name
from dispytch_sqs.settings import SQSSettings


@dataclass(frozen=True)
class GroupQueue:
    """A group's queue: its URL and ARN, and its dead-letter queue's URL when it has one."""

    url: str
    arn: str
    dead_letter_url: str | None = None


class Topics:
    """SNS topic ARNs by Dispytch topic, each topic created once per process."""

    def __init__(self, settings: SQSSettings, sns: Any) -> None:
        self._settings = settings
        self._sns = sns
        self._arns: dict[str, asyncio.Future[str]] = {}

    async def arn(self, topic: str) -> str:
        """The ARN of `topic`'s SNS topic, creating the topic if it does not exist."""
        found = self._arns.get(topic)
        if found is None:
            found = self._arns[topic] = asyncio.ensure_future(self._create(topic))
            found.add_done_callback(lambda f: self._forget_failure(topic, f))
        return await asyncio.shield(found)

    async def _create(self, topic: str) -> str:
        settings = self._settings
        attributes = {"FifoTopic": "true"} if settings.fifo else {}
        reply = await self._sns.create_topic(
            Name=topic_name(topic, settings.name_prefix, settings.fifo), Attributes=attributes
        )
        return str(reply["TopicArn"])

    def _forget_failure(self, topic: str, created: asyncio.Future[str]) -> None:
        if created.cancelled() or created.exception() is not None:
            self._arns.pop(topic, None)


async def group_queue(
    settings: SQSSettings, sqs: Any, sns: Any, group: str, topics: Iterable[str]
) -> GroupQueue:
    """Create `group`'s queue (and dead-letter queue) and subscribe it to `topics`."""
    name = queue_name(group, settings.name_prefix, settings.fifo)
    url, arn = await _queue(sqs, name, settings.fifo)
    arns = Topics(settings, sns)
    topic_arns = [await arns.arn(topic) for topic in sorted(set(topics))]
    attributes = {
        "VisibilityTimeout": str(settings.visibility_timeout),
        "ReceiveMessageWaitTimeSeconds": str(settings.wait_time),
        "MaximumMessageSize": str(settings.max_message_size),
    }
    if topic_arns:
        attributes["Policy"] = _sns_may_send(arn, topic_arns[0], settings.name_prefix)
    dead_letter_url = None
    if settings.max_receive_count is not None:
        dead_letter_url, dead_letter_arn = await _queue(
            sqs, dead_letter_queue_name(name), settings.fifo
        )
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": settings.max_receive_count}
        )
    await sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    for topic_arn in topic_arns:
        await sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
    return GroupQueue(url, arn, dead_letter_url)


async def _queue(sqs: Any, name: str, fifo: bool) -> tuple[str, str]:
    """Create queue `name` if missing; its URL and ARN."""
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = str((await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"])
    reply = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, str(reply["Attributes"]["QueueArn"])


def _sns_may_send(queue_arn: str, topic_arn: str, prefix: str) -> str:
    """A queue policy letting the SNS topics of this application send to the queue."""
    account_prefix = topic_arn.rsplit(":", 1)[0]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "dispytch-sns-fan-out",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnLike": {"aws:SourceArn": f"{account_prefix}:{prefix}*"}},
                }
            ],
        }
    )

"""Answering requests: a handler's return value, or why there is none, sent to the reply
destination a request names (see `dispytch.reply`)."""

from __future__ import annotations

import logging
from typing import Any

from dispytch.dead_letter import error_text, error_type_name
from dispytch.emitter.producer import OutgoingMessage, Producer, publisher
from dispytch.listener.consumer import Message
from dispytch.reply import (
    CORRELATION_ID,
    REPLIES_TOPIC_PREFIX,
    REPLY_TO,
    ReplyError,
    error_envelope,
    reply_envelope,
)
from dispytch.serialization import Envelope, Serializer

logger = logging.getLogger("dispytch.listener")

_LONGEST_REPLIES_TOPIC = 200


class Replier:
    """Sends the replies of one listener through its `producer`.

    A message without a reply destination is no request: nothing is sent for it. A reply
    that cannot be sent is logged; the handler's work stands and the caller times out.
    """

    def __init__(self, producer: Producer | None, serializer: Serializer) -> None:
        self.serializer = serializer
        self._publish = None if producer is None else publisher(producer)

    async def answer(self, msg: Message, handler: str, result: Any) -> None:
        """Reply to the request `msg` with `result`, what `handler` returned."""
        if REPLY_TO not in msg.headers:
            return
        if result is None:
            await self.refuse(
                msg,
                TypeError(
                    f"handler {handler} returned None; a handler answering requests "
                    "returns the reply (a pydantic model)"
                ),
                "no_reply",
                handler,
                1,
            )
            return
        try:
            envelope = reply_envelope(result)
        except Exception as exc:  # a value pydantic cannot dump as JSON
            await self.refuse(msg, exc, "unserializable", handler, 1)
            return
        await self._send(msg, envelope)

    async def refuse(
        self, msg: Message, error: BaseException, reason: str, handler: str | None, attempts: int
    ) -> None:
        """Tell the caller of the request `msg` that it has no answer, and why."""
        if REPLY_TO not in msg.headers:
            return
        failure = ReplyError(
            reason=reason,
            error_type=error_type_name(error),
            error_message=error_text(error),
            handler=handler,
            attempts=attempts,
        )
        await self._send(msg, error_envelope(failure))

    async def _send(self, msg: Message, envelope: Envelope) -> None:
        address, correlation_id = msg.headers[REPLY_TO], msg.headers.get(CORRELATION_ID)
        publish = self._publish
        why = None
        if not _is_replies_topic(address):
            why = f"its reply destination {address[:_LONGEST_REPLIES_TOPIC]!r} is no replies topic"
        elif publish is None:
            why = "the listener has no producer"
        elif correlation_id is None:
            why = "it has no correlation id"
        if why is not None:
            logger.error("cannot reply to a request from %s: %s", msg.topic, why)
            return
        assert publish is not None
        assert correlation_id is not None
        try:
            payload = self.serializer.dumps(envelope)
            await publish(
                OutgoingMessage(address, payload, headers={CORRELATION_ID: correlation_id})
            )
        except Exception:
            logger.exception(
                "could not send the reply to request %s from %s to %s",
                correlation_id,
                msg.topic,
                address,
            )


def _is_replies_topic(address: str) -> bool:
    """Whether `address` is a replies topic an emitter made: a request cannot make a
    listener send to any other topic."""
    return address.startswith(REPLIES_TOPIC_PREFIX) and len(address) <= _LONGEST_REPLIES_TOPIC

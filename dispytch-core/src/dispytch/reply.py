"""Replies on the wire: how a request names where its reply goes, and what a reply is.

A request is an ordinary event whose message carries two headers: `REPLY_TO`, the
destination (a topic) of the requesting emitter's replies, and `CORRELATION_ID`, the
request event's id. A reply is an event sent to that destination with the same
`CORRELATION_ID` header: of type `REPLY_EVENT` whose body is the handler's return value,
or of type `ERROR_REPLY_EVENT` whose body is a `ReplyError` saying why there is none.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, TypeAdapter

from dispytch.serialization import Envelope
from dispytch.serialization.envelope import new_event_id

REPLY_TO = "dispytch-reply-to"
"""Header of a request: the destination its reply goes to."""
CORRELATION_ID = "dispytch-correlation-id"
"""Header of a request and of its reply: the request event's id."""
REPLIES_TOPIC_PREFIX = "dispytch.replies."
"""Every replies topic starts so; a listener sends replies to no other topic."""
REPLY_EVENT = "dispytch.reply"
"""Event type of a reply whose body is the handler's answer."""
ERROR_REPLY_EVENT = "dispytch.reply.error"
"""Event type of a reply whose body is a `ReplyError`: the request has no answer."""

_ANY = TypeAdapter[Any](Any)


class ReplyError(BaseModel):
    """Body of an error reply: why the request got no answer.

    `reason` is a dead-letter reason (`handler_failed`, `invalid`, `undecodable`,
    `unmatched` ...) or `no_reply` (the handler returned None) or `unserializable`
    (what it returned could not be encoded); `attempts` counts the handler's tries.
    """

    reason: str
    error_type: str
    error_message: str
    handler: str | None = None
    attempts: int = 1


def reply_envelope(result: Any) -> Envelope:
    """The envelope of a reply whose body is `result` (a pydantic model or any value
    pydantic can dump as JSON); raises when it cannot be dumped."""
    if isinstance(result, BaseModel):
        body = result.model_dump(mode="json", by_alias=True)
    else:
        body = _ANY.dump_python(result, mode="json")
    return Envelope(new_event_id(), REPLY_EVENT, body, int(time.time() * 1000))


def error_envelope(error: ReplyError) -> Envelope:
    """The envelope of an error reply."""
    return Envelope(
        new_event_id(), ERROR_REPLY_EVENT, error.model_dump(mode="json"), int(time.time() * 1000)
    )

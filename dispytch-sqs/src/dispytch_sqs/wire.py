"""How an event travels through SNS and SQS: a text body and three message attributes.

The body is the encoded event when it is text SQS accepts (UTF-8 without control
characters: JSON always is); any other payload (msgpack, say) is sent in base64, marked
by the attribute `dispytch.encoding`. `dispytch.topic` names the Dispytch topic, which
a queue subscribed to several SNS topics could not tell otherwise, and
`dispytch.headers` holds the event's headers as one JSON object, so that any number
of them fits SQS's ten attributes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

TOPIC = "dispytch.topic"
HEADERS = "dispytch.headers"
ENCODING = "dispytch.encoding"
BASE64 = "base64"

_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def body(payload: bytes) -> tuple[str, bool]:
    """The message body carrying `payload`, and whether it is base64."""
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode(), True
    if _NOT_SQS_TEXT.search(text):
        return base64.b64encode(payload).decode(), True
    return text, False


def attributes(
    topic: str, headers: Mapping[str, str], base64_body: bool
) -> dict[str, dict[str, str]]:
    """The message attributes of an event on `topic` with `headers`."""
    found = {TOPIC: _string(topic)}
    if headers:
        found[HEADERS] = _string(json.dumps(dict(headers), separators=(",", ":")))
    if base64_body:
        found[ENCODING] = _string(BASE64)
    return found


def attributes_size(attrs: Mapping[str, Mapping[str, str]]) -> int:
    """Bytes AWS counts for message attributes: each one's name, type and value."""
    return sum(
        len(name.encode()) + len(value["DataType"]) + len(value["StringValue"].encode())
        for name, value in attrs.items()
    )


def payload(message: Mapping[str, Any]) -> bytes:
    """The encoded event a received SQS `message` carries."""
    text: str = message.get("Body", "")
    if _string_attribute(message, ENCODING) == BASE64:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            pass  # not what the attribute claims: hand the text on, to be dead-lettered
    return text.encode()


def topic(message: Mapping[str, Any]) -> str | None:
    """The Dispytch topic of a received SQS `message`, if its sender named one."""
    return _string_attribute(message, TOPIC)


def headers(message: Mapping[str, Any]) -> dict[str, str]:
    """The event headers a received SQS `message` carries (none if they are unreadable)."""
    raw = _string_attribute(message, HEADERS)
    if raw is None:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): str(v) for k, v in found.items()}


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _string_attribute(message: Mapping[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    if value is None:
        return None
    found = value.get("StringValue")
    return found if isinstance(found, str) else None

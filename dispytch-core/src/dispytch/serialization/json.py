"""The default serializer: the JSON wire format of Dispytch 0.10."""

from __future__ import annotations

import json

from pydantic_core import from_json

from dispytch.serialization.envelope import DecodeError, Envelope


class JSONSerializer:
    """UTF-8 JSON envelopes.

    Payloads are parsed with pydantic-core's JSON parser, several times faster than the
    standard library's; the few documents it refuses and `json` accepts (lone surrogate
    escapes, nesting deeper than 200 levels) are parsed by `json`, so both accept the same.
    """

    content_type = "application/json"

    def dumps(self, envelope: Envelope) -> bytes:
        return json.dumps(envelope.as_dict()).encode()

    def loads(self, payload: bytes) -> Envelope:
        try:
            data = from_json(payload, cache_strings="keys")
        except ValueError:
            try:
                data = json.loads(payload.decode())
            except (ValueError, RecursionError) as exc:  # also too deep, or too long an integer
                raise DecodeError(f"payload is not JSON: {type(exc).__name__}: {exc}") from None
        return Envelope.from_dict(data)

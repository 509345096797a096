"""The default serializer: the JSON wire format of Dispytch 0.10."""

from __future__ import annotations

import json

from dispytch.serialization.envelope import DecodeError, Envelope


class JSONSerializer:
    """UTF-8 JSON envelopes."""

    def dumps(self, envelope: Envelope) -> bytes:
        return json.dumps(envelope.as_dict()).encode()

    def loads(self, payload: bytes) -> Envelope:
        try:
            data = json.loads(payload.decode())  # decoding first skips json's encoding sniffing
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError(f"payload is not JSON: {exc}") from None
        return Envelope.from_dict(data)

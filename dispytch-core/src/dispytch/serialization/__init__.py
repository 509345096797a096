"""Serializers turn envelopes into bytes and back. JSON is the default; msgpack is an extra."""

from dispytch.serialization.envelope import DecodeError, Envelope, Serializer
from dispytch.serialization.json import JSONSerializer

__all__ = ["DecodeError", "Envelope", "JSONSerializer", "Serializer"]

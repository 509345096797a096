"""Event bodies as JSON Schema: pydantic's schemas, with nested definitions lifted into
`components/schemas` so that every model is defined once and referenced by name."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

REF_TEMPLATE = "#/components/schemas/{model}"

Mode = Literal["validation", "serialization"]


class BodySchemas:
    """Collects the body types of messages, then builds all their schemas in one pass
    (so that two models of one name get distinct component names)."""

    def __init__(self) -> None:
        self._adapters: dict[tuple[Hashable, JsonSchemaMode], TypeAdapter[Any]] = {}
        self._built: dict[tuple[Hashable, JsonSchemaMode], dict[str, Any]] | None = None
        self.components: dict[str, Any] = {}

    def add(self, key: Hashable, body: TypeAdapter[Any], mode: Mode) -> tuple[Hashable, Mode]:
        """Register the body type `body` under `key`; returns the handle `schema` takes."""
        self._adapters.setdefault((key, mode), body)
        return (key, mode)

    def schema(self, handle: tuple[Hashable, Mode]) -> dict[str, Any]:
        """The schema of a registered body: a `$ref` for a model, inline otherwise."""
        if self._built is None:
            self._build()
        assert self._built is not None
        return self._built[handle]

    def _build(self) -> None:
        inputs = [(key, mode, adapter) for (key, mode), adapter in self._adapters.items()]
        if not inputs:
            self._built = {}
            return
        built, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
        self._built = {handle: _asyncapi_schema(schema) for handle, schema in built.items()}
        self.components = {
            name: _asyncapi_schema(schema)
            for name, schema in sorted(definitions.get("$defs", {}).items())
        }


def _asyncapi_schema(schema: Any) -> Any:
    """A pydantic JSON Schema as an AsyncAPI Schema Object: `discriminator` is the property
    name there, where pydantic writes OpenAPI's `{"propertyName", "mapping"}`."""
    if isinstance(schema, list):
        return [_asyncapi_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _asyncapi_schema(value) for key, value in schema.items()}
    discriminator = converted.get("discriminator")
    if isinstance(discriminator, dict) and "propertyName" in discriminator:
        converted["discriminator"] = discriminator["propertyName"]
    return converted

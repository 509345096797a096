"""The official AsyncAPI 3.0.0 JSON Schema, vendored under schema/, as a validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = Path(__file__).parent / "schema" / "asyncapi-3.0.0.json"


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def problems(validator: jsonschema.Draft7Validator, document: Any) -> list[str]:
    """Every way `document` breaks the schema, with where."""
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
        for error in validator.iter_errors(document)
    ]

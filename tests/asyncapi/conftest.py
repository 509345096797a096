from __future__ import annotations

import jsonschema
import pytest
from official_schema import validator


@pytest.fixture(scope="session")
def asyncapi_validator() -> jsonschema.Draft7Validator:
    """A validator of the official AsyncAPI 3.0.0 schema."""
    return validator()

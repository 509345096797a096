"""Backend settings: validated pydantic models, built from keywords or from a URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, SecretStr
from typing_extensions import Self


class BackendSettings(BaseModel):
    """Base for a backend's settings. Unknown keys are rejected, naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Settings from a URL: the URL itself goes to a `url` field when the model has
        one, and query parameters go to the fields they name."""
        values: dict[str, Any] = dict(parse_qsl(urlsplit(url).query))
        if "url" in cls.model_fields:
            values["url"] = url
        return cls.model_validate(values)


class SecretURL(SecretStr):
    """A connection URL whose password never shows in reprs, logs or CLI output."""

    def _display(self) -> str:
        return redact_url(self.get_secret_value())


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))

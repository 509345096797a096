"""AsyncAPI 3.0 documents built from a service's code: `asyncapi_document(app)`, or
`dispytch docs gen module:app` on the command line."""

from dispytch.asyncapi.document import ASYNCAPI_VERSION, asyncapi_document
from dispytch.asyncapi.yaml import to_yaml

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document", "to_yaml"]

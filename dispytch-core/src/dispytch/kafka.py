"""The Dispytch 0.10 import path of the Kafka backend: `from dispytch.kafka import ...`.

The backend lives in its own distribution, `dispytch-kafka` (package `dispytch_kafka`).
"""

try:
    from dispytch_kafka import *  # noqa: F403
    from dispytch_kafka import __all__ as __all__
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f'dispytch.kafka needs the Kafka backend ({exc}): pip install "dispytch-core[kafka]"'
    ) from exc

"""The Dispytch 0.10 import path of the RabbitMQ backend: `from dispytch.rabbitmq import ...`.

The backend lives in its own distribution, `dispytch-rabbitmq` (package `dispytch_rabbitmq`).
"""

try:
    from dispytch_rabbitmq import *  # noqa: F403
    from dispytch_rabbitmq import __all__ as __all__
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f"dispytch.rabbitmq needs the RabbitMQ backend ({exc}): "
        'pip install "dispytch-core[rabbitmq]"'
    ) from exc

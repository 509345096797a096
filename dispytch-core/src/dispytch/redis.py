"""The Dispytch 0.10 import path of the Redis backend: `from dispytch.redis import ...`.

The backend lives in its own distribution, `dispytch-redis` (package `dispytch_redis`).
"""

try:
    from dispytch_redis import *  # noqa: F403
    from dispytch_redis import __all__ as __all__
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f'dispytch.redis needs the Redis backend ({exc}): pip install "dispytch-core[redis]"'
    ) from exc

"""A Dispytch backend that keeps messages in an SQLite file (`sqlite:///path/to/file.db`)."""

from dispytch_sqlite.store import Store
from dispytch_sqlite.transport import SQLiteConsumer, SQLiteProducer, SQLiteSettings

__all__ = ["SQLiteConsumer", "SQLiteProducer", "SQLiteSettings", "Store"]

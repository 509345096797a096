"""The SQLite store: one row per message per subscribed group, leased while handled.

A consumer claims rows by leasing them; ack deletes the row, nack and stop give
the lease back, and a lease left by a crashed process expires on its own.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from dispytch.routing import TopicPattern

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    grp TEXT NOT NULL, pattern TEXT NOT NULL, delimiter TEXT NOT NULL,
    PRIMARY KEY (grp, pattern, delimiter)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    headers TEXT NOT NULL, key TEXT, attempt INTEGER NOT NULL DEFAULT 0,
    visible_at REAL NOT NULL, held_by TEXT
);
CREATE INDEX IF NOT EXISTS ready ON messages (grp, visible_at, id);
"""


@dataclass(frozen=True)
class Row:
    id: int
    topic: str
    payload: bytes
    headers: dict[str, str]
    key: str | None
    attempt: int


class Store:
    """Thread-safe access to one SQLite file; every call runs in a worker thread."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self._db)

        return await asyncio.to_thread(locked)

    async def subscribe(self, group: str, patterns: Iterable[TopicPattern]) -> None:
        rows = [(group, p.text, p.delimiter) for p in patterns]
        await self._run(
            lambda db: db.executemany("INSERT OR IGNORE INTO subscriptions VALUES (?, ?, ?)", rows)
        )

    async def publish(
        self, topic: str, payload: bytes, headers: dict[str, str], key: str | None
    ) -> None:
        def insert(db: sqlite3.Connection) -> None:
            subscriptions = db.execute(
                "SELECT grp, pattern, delimiter FROM subscriptions"
            ).fetchall()
            groups = {
                g
                for g, text, delim in subscriptions
                if TopicPattern(text, delim).match(topic) is not None
            }
            encoded = json.dumps(headers)
            with db:
                db.executemany(
                    "INSERT INTO messages (grp, topic, payload, headers, key, visible_at) "
                    "VALUES (?, ?, ?, ?, ?, 0)",
                    [(g, topic, payload, encoded, key) for g in sorted(groups)],
                )

        await self._run(insert)

    async def claim(self, group: str, holder: str, limit: int, lease: float) -> list[Row]:
        def lease_rows(db: sqlite3.Connection) -> list[Row]:
            now = time.time()
            with db:
                found = db.execute(
                    "UPDATE messages SET held_by = ?, visible_at = ?, attempt = attempt + 1 "
                    "WHERE id IN (SELECT id FROM messages WHERE grp = ? AND visible_at <= ? "
                    "ORDER BY id LIMIT ?) RETURNING id, topic, payload, headers, key, attempt",
                    (holder, now + lease, group, now, limit),
                ).fetchall()
            return sorted((_row(r) for r in found), key=lambda r: r.id)

        return await self._run(lease_rows)

    async def ack(self, message_id: int) -> None:
        await self._run(lambda db: db.execute("DELETE FROM messages WHERE id = ?", (message_id,)))

    async def release(self, message_id: int, delay: float) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE messages SET held_by = NULL, visible_at = ? WHERE id = ?",
                (time.time() + delay, message_id),
            )
        )

    async def release_all(self, holder: str) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE messages SET held_by = NULL, visible_at = 0 WHERE held_by = ?", (holder,)
            )
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(values: Any) -> Row:
    message_id, topic, payload, headers, key, attempt = values
    return Row(message_id, topic, bytes(payload), json.loads(headers), key, attempt)

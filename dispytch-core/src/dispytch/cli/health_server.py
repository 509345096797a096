"""A tiny HTTP responder for probes: `/livez`, `/readyz`, and `/metrics` when the
Prometheus instrumentation is installed. Standard library only; GET requests only."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("dispytch.health")

Check = Callable[[], Awaitable[tuple[bool, str]]]
"""A probe: whether it passes, and a line saying why."""

_REQUEST_TIMEOUT = 5.0
_MAX_HEADER_LINES = 100
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """Answers `GET /livez` and `GET /readyz` with 200 or 503 and a line of text, and
    `GET /metrics` with what `dispytch.prometheus.render_latest()` returns (404 when the
    instrumentation is not installed)."""

    def __init__(self, live: Check, ready: Check) -> None:
        self.checks = {"/livez": live, "/readyz": ready}
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on `host`:`port` (0: any free port); return the port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path = await asyncio.wait_for(_request(reader), _REQUEST_TIMEOUT)
            status, body, content_type = await self._respond(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (body if method == "GET" else b""))
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, ValueError):
            pass  # a client that hung up or spoke no HTTP gets nothing
        finally:
            writer.close()

    async def _respond(self, method: str, path: str) -> tuple[int, bytes, str]:
        if method not in ("GET", "HEAD"):
            return 405, b"only GET\n", "text/plain; charset=utf-8"
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return _metrics()
        check = self.checks.get(path)
        if check is None:
            return 404, b"try /livez, /readyz or /metrics\n", "text/plain; charset=utf-8"
        try:
            ok, text = await check()
        except Exception as exc:
            logger.exception("health check %s failed", path)
            ok, text = False, f"the check failed: {exc!r}"
        return (200 if ok else 503), f"{text}\n".encode(), "text/plain; charset=utf-8"


async def _request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and path of one request; its headers are read and dropped."""
    method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
    for _ in range(_MAX_HEADER_LINES):
        if (await reader.readline()) in (b"\r\n", b"\n", b""):
            break
    return method, path


def _metrics() -> tuple[int, bytes, str]:
    try:
        prometheus = importlib.import_module("dispytch.prometheus")
    except ImportError:
        return 404, b"metrics need: pip install 'dispytch-core[prometheus]'\n", "text/plain"
    body, content_type = prometheus.render_latest()
    return 200, body, content_type

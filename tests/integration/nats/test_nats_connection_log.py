"""What a NATS connection opened from settings logs: an outage, not an orderly close."""

from __future__ import annotations

import asyncio

import pytest

from brokers import NatsServer
from dispytch_nats import NatsSettings

DISCONNECTED = "disconnected from NATS; reconnecting"


def _disconnect_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage() == DISCONNECTED]


async def test_closing_a_connection_logs_no_disconnect(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await NatsSettings(url=nats_server.url).connect()
    await client.close()
    assert client.is_closed
    assert _disconnect_warnings(caplog) == []


async def test_losing_the_server_logs_a_disconnect_and_the_reconnect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with NatsServer() as server:
        client = await NatsSettings(url=server.url).connect()
        try:
            await asyncio.to_thread(server.restart)
            for _ in range(200):  # nats-py retries every 2 s by default
                if any(r.getMessage() == "reconnected to NATS" for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
            assert _disconnect_warnings(caplog) == [DISCONNECTED]
            assert client.is_connected
        finally:
            await client.close()
    assert _disconnect_warnings(caplog) == [DISCONNECTED]

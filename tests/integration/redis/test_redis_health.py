"""`dispytch run --health-port` against a Redis server of the test's own: readiness
follows the broker and the shutdown, liveness stays up."""

import asyncio
from pathlib import Path

import pytest
from redis_helpers import fresh

from brokers import RedisServer, free_port
from service_process import (
    RECORDER_APP,
    ServiceProcess,
    emit_numbered,
    eventually,
    http_get,
    recorder_env,
    records,
)

pytestmark = pytest.mark.redis


async def test_readiness_follows_the_broker_and_the_shutdown_while_liveness_stays(
    tmp_path: Path,
) -> None:
    redis = RedisServer()
    redis.start()
    port, topic, record = free_port(), fresh("health"), tmp_path / "records.txt"
    url = f"{redis.url}?block=0.2&timeout=1"
    (tmp_path / "recorder.py").write_text(RECORDER_APP)
    env = recorder_env(url, fresh("group"), topic, record, handler_delay=1.5)
    service = ServiceProcess(
        ["recorder:app", "--health-port", str(port), "--stop-timeout", "20"], cwd=tmp_path, env=env
    )
    liveness: list[int] = []

    async def status(path: str) -> int:
        code, _ = await http_get(port, path)
        liveness.append((await http_get(port, "/livez"))[0])
        return code

    async def becomes(code: int, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (found := await status("/readyz")) != code:
            assert asyncio.get_running_loop().time() < deadline, f"/readyz stayed {found}"
            await asyncio.sleep(0.1)

    await service.start()
    try:
        await service.wait_for_log("listening on redis")
        assert await status("/readyz") == 200
        metrics, exposition = await http_get(port, "/metrics")
        assert metrics == 200
        assert "# TYPE" in exposition

        loop = asyncio.get_running_loop()
        redis.stop()
        stopped_at = loop.time()
        await becomes(503, timeout=10)
        unready_in = loop.time() - stopped_at
        _, reason = await http_get(port, "/readyz")
        assert "did not answer a ping" in reason

        redis.start()
        started_at = loop.time()
        await becomes(200, timeout=30)
        ready_in = loop.time() - started_at
        await emit_numbered(url, topic, [1])
        await eventually(lambda: [seq for *_, seq in records(record)] == [1], "consuming again")

        await emit_numbered(url, topic, [2])
        deadline = asyncio.get_running_loop().time() + 10
        while "1 in flight" not in (await http_get(port, "/readyz"))[1]:
            assert asyncio.get_running_loop().time() < deadline, "the event never got in flight"
            await asyncio.sleep(0.05)
        service.terminate()
        await becomes(503, timeout=5)  # still serving, the handler still running
        assert [seq for *_, seq in records(record)] == [1], "the in-flight handler runs on"
        assert await service.wait(30) == 0, service.output()
    finally:
        service.kill_all()
        redis.close()
    assert [seq for *_, seq in records(record)] == [1, 2], "the in-flight handler finished"
    assert set(liveness) == {200}, "liveness stayed up throughout"
    print(
        f"\n/readyz 503 {unready_in:.1f}s after Redis stopped, 200 {ready_in:.1f}s after it "
        f"started again; /livez 200 on all {len(liveness)} probes"
    )

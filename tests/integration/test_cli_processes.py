"""`dispytch probe`, `dispytch run --reload`, the supervisor giving up, and `dispytch run`
options from the environment: process tests, run with the broker suites on one Python."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dispytch.cli.options import RunOptions
from dispytch.cli.supervisor import MAX_QUICK_CRASHES, Supervisor
from service_process import ServiceProcess, eventually, worker_pids

APP = """
from typing import Any
from dispytch import App, Event, EventListener

listener = EventListener.from_url("memory://", group="reloaded")


@listener.handler(topic="pings", event="ping")
async def handle(event: Event[Any]) -> None: ...


app = App([listener])
"""


def dispytch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispytch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_probe_says_why_an_unreachable_backend_fails_within_its_timeout() -> None:
    result = dispytch("probe", "kafka://127.0.0.1:1", "--timeout", "5")
    assert result.returncode == 1
    assert "kafka://127.0.0.1:1: " in result.stderr
    assert "unreachable" in result.stderr or "no answer within 5.0s" in result.stderr


def test_probe_answers_for_a_reachable_backend() -> None:
    result = dispytch("probe", env={"DISPYTCH_BACKEND": "memory://"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "memory://: ok"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DISPYTCH_WORKERS", "three", "$DISPYTCH_WORKERS='three' is invalid"),
        ("DISPYTCH_RELOAD", "maybe", "$DISPYTCH_RELOAD='maybe' is invalid"),
        ("DISPYTCH_LOG_FORMAT", "xml", "$DISPYTCH_LOG_FORMAT='xml' is invalid"),
    ],
)
def test_run_options_come_from_the_environment_and_are_checked(
    variable: str, value: str, message: str
) -> None:
    result = dispytch("run", env={"DISPYTCH_APP": "app:app", variable: value})
    assert result.returncode == 1
    assert message in result.stderr


async def test_touching_a_source_file_restarts_the_worker_exactly_once(tmp_path: Path) -> None:
    source = tmp_path / "reloaded.py"
    source.write_text(textwrap.dedent(APP))
    service = ServiceProcess(["reloaded:app", "--reload"], cwd=tmp_path, env={})
    await service.start()
    try:
        await service.wait_for_log("listening on memory", count=1)
        await asyncio.sleep(0.5)  # the watcher is set up before the worker starts
        source.write_text(source.read_text() + "\n# touched\n")
        await service.wait_for_log("listening on memory", count=2)
        # watchfiles groups changes for 1.6 s: give a second restart twice that to show up.
        await asyncio.sleep(3.5)
        assert service.output().count("changed; restarting the worker") == 1
        assert service.output().count("listening on memory") == 2
        service.terminate()
        assert await service.wait(30) == 0, service.output()
    finally:
        service.kill_all()
    assert "reloaded.py changed" in service.output()


async def test_the_supervisor_gives_up_on_workers_that_keep_crashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "crashing.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.chdir(tmp_path)
    supervisor = Supervisor(RunOptions(app="crashing:app"), dict(os.environ), 0.01)
    assert await supervisor.run() == 1
    errors = capfd.readouterr().err
    assert f"crashed {MAX_QUICK_CRASHES} times in a row soon after starting; giving up" in errors
    assert errors.count("RuntimeError: broken at import") == MAX_QUICK_CRASHES


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    (tmp_path / "reloaded.py").write_text(textwrap.dedent(APP))
    service = ServiceProcess(["reloaded:app", "--workers", "2"], cwd=tmp_path, env={})
    await service.start()
    try:
        await service.wait_for_log("listening on memory", count=2)
        workers = worker_pids(service.pid)
        assert len(workers) == 2
        assert service.process is not None
        service.process.kill()
        await service.wait(10)
        await eventually(
            lambda: not any(running(pid) for pid in workers),
            "the orphaned workers stopped",
            timeout=30,
        )
    finally:
        service.kill_all()
    assert service.output().count("the supervisor (pid") == 2


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"

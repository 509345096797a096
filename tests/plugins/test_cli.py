"""The `dispytch` command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.testing import Probe, running


def dispytch(
    *args: str, cwd: Path | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispytch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("command", [[], ["backends"], ["run"], ["probe"], ["emit"], ["demo"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = dispytch(*command, "--help")
    assert result.returncode == 0
    assert "usage: dispytch" in result.stdout


def test_backends_lists_name_distribution_version_and_capabilities() -> None:
    result = dispytch("backends")
    assert result.returncode == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["name", "distribution", "version", "schemes", "capabilities"]
    memory = next(r for r in rows if r.startswith("memory "))
    assert "dispytch-core" in memory
    assert "consumer_groups" in memory


def test_demo_shows_retries_and_a_dead_letter() -> None:
    result = dispytch("demo")
    assert result.returncode == 0, result.stderr
    assert "notified customer of order 2 (attempt 2)" in result.stdout
    assert "dead letter from shop.eu.orders: builtins.LookupError" in result.stdout


class Note(BaseModel):
    text: str


@pytest.mark.usefixtures("sqlite_plugin")
async def test_emit_publishes_one_event_with_headers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    listener = EventListener.from_url(url, group="ops")
    probe = Probe()

    @listener.handler(topic="ops.notes", event="note")
    async def record(event: Event[Note]) -> None:
        probe.add(event)

    async with running(listener):
        result = dispytch(
            "emit",
            "--backend",
            url,
            "--topic",
            "ops.notes",
            "--type",
            "note",
            "--body",
            '{"text": "by hand"}',
            "--header",
            "origin=operator",
        )
        assert result.returncode == 0, result.stderr
        [event] = await probe.wait_for(1)
    assert event.body == Note(text="by hand")
    assert event.headers == {"origin": "operator"}


def test_emit_rejects_bad_input_clearly() -> None:
    bad_json = dispytch(
        "emit", "--backend", "memory://", "--topic", "t", "--type", "x", "--body", "{"
    )
    assert bad_json.returncode == 1
    assert "--body is not JSON" in bad_json.stderr
    no_backend = dispytch(
        "emit", "--topic", "t", "--type", "x", env={**os.environ, "DISPYTCH_BACKEND": ""}
    )
    assert no_backend.returncode == 1
    assert "no backend" in no_backend.stderr
    unknown = dispytch("emit", "--backend", "kafak://h:1", "--topic", "t", "--type", "x")
    assert unknown.returncode == 1
    assert "Did you mean 'kafka'?" in unknown.stderr


def test_passwords_stay_out_of_cli_output() -> None:
    result = dispytch(
        "emit", "--backend", "memory://user:s3cret@broker", "--topic", "t", "--type", "x"
    )
    assert "s3cret" not in result.stdout + result.stderr
    assert "user:***@broker" in result.stdout


def test_run_reports_an_app_it_cannot_import() -> None:
    result = dispytch("run", "no_such_module:app")
    assert result.returncode == 1
    assert "cannot import 'no_such_module'" in result.stderr


class Ping(EventBase):
    __topic__ = "app.pings"
    __event_type__ = "ping"
    n: int


APP = """
from pathlib import Path
from pydantic import BaseModel
from dispytch import Event, HandlerGroup

handlers = HandlerGroup(default_topic="app.pings", default_event="ping")

class Ping(BaseModel):
    n: int

@handlers.handler()
async def record(event: Event[Ping]) -> None:
    with Path("{log}").open("a") as log:
        log.write(f"{{event.body.n}}\\n")
"""


@pytest.mark.usefixtures("sqlite_plugin")
async def test_run_serves_an_app_until_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "handled.log"
    (tmp_path / "pingapp.py").write_text(textwrap.dedent(APP.format(log=log)))
    url = f"sqlite:///{tmp_path / 'app.db'}"
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dispytch.cli",
        "run",
        "pingapp:handlers",
        "--backend",
        url,
        "--group",
        "app",
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    assert server.stderr is not None
    try:
        ready = await asyncio.wait_for(server.stderr.readline(), 60)
        assert b"listening on sqlite as group 'app' to app.pings" in ready
        async with EventEmitter.from_url(url) as emitter:
            for n in range(3):
                await emitter.emit(Ping(n=n))
        for _ in range(1200):
            if len(_lines(log)) == 3:
                break
            await asyncio.sleep(0.05)
        assert sorted(_lines(log)) == ["0", "1", "2"]
    finally:
        server.send_signal(signal.SIGTERM)
        stderr = await asyncio.wait_for(server.stderr.read(), 60)
        await server.wait()
    assert server.returncode == 0, stderr
    assert b"stopping" in stderr


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_backends_json_is_machine_readable() -> None:
    data = json.loads(dispytch("backends", "--json").stdout)
    assert any(b["name"] == "memory" for b in data["backends"])


FACTORY_APP = """
from dispytch import App, EventListener, HandlerGroup

listener = EventListener.from_url("memory://", group="factory")
handlers = HandlerGroup()


@listener.handler(topic="pings", event="ping")
async def handle() -> None: ...


def create_app() -> App:
    return App([listener], emits=[])
"""


def test_run_finds_an_app_a_factory_or_a_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispytch import App
    from dispytch.cli.errors import CommandError
    from dispytch.cli.target import load_app

    (tmp_path / "factory_app.py").write_text(FACTORY_APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("DISPYTCH_BACKEND", raising=False)
    monkeypatch.delenv("DISPYTCH_GROUP", raising=False)

    def load(target: str, factory: bool = False, backend: str | None = None) -> App:
        return load_app(target, factory=factory, backend=backend, group=None, stop_timeout=5)

    made = load("factory_app:create_app", factory=True)
    assert made.stop_timeout == 5
    [listener] = made.listeners
    assert load("factory_app:listener").listeners == [listener], "a listener is wrapped in an App"
    with pytest.raises(CommandError, match="pass --factory"):
        load("factory_app:create_app")
    with pytest.raises(CommandError, match="drop --backend"):
        load("factory_app:create_app", factory=True, backend="memory://")
    with pytest.raises(CommandError, match="not a callable"):
        load("factory_app:listener", factory=True)
    with pytest.raises(CommandError, match="needs --backend and --group"):
        load("factory_app:handlers")

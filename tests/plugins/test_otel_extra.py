"""`pip install "dispytch-core[otel]"` in a fresh venv: the OpenTelemetry API, nothing of the SDK,
and tracing attached to a listener and an emitter works with no SDK configured."""

from __future__ import annotations

import json
import subprocess
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).parents[2]

WITHOUT_SDK = textwrap.dedent(
    """
    import asyncio

    from dispytch import Event, EventBase, EventEmitter, EventListener
    from dispytch.opentelemetry import Tracing


    class Ping(EventBase):
        __topic__ = "pings"
        __event_type__ = "ping"
        n: int


    async def main() -> None:
        tracing, seen = Tracing(), asyncio.Event()
        listener = EventListener.from_url("memory://", group="g")
        listener.add_instrumentation(tracing)

        @listener.handler(topic="pings", event="ping")
        async def handle(event: Event[dict]) -> None:
            seen.set()

        async with listener, EventEmitter.from_url("memory://") as emitter:
            emitter.add_instrumentation(tracing)
            await emitter.emit(Ping(n=1))
            await asyncio.wait_for(seen.wait(), 10)
        print("handled")


    asyncio.run(main())
    """
)


def test_the_otel_extra_installs_the_api_and_nothing_of_the_sdk(tmp_path: Path) -> None:
    env = tmp_path / "otel"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
        )

    installed = run("-m", "pip", "install", "./dispytch-core[otel]")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = run("-m", "pip", "list", "--format=json")
    names = {d["name"].lower().replace("_", "-") for d in json.loads(listed.stdout)}
    assert "opentelemetry-api" in names
    assert "opentelemetry-sdk" not in names
    assert not {n for n in names if n.startswith("opentelemetry-") and n != "opentelemetry-api"}

    traced = run("-c", WITHOUT_SDK)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout.strip() == "handled"

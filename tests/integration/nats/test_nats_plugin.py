"""dispytch-nats is a plugin like a third party's: `dispytch backends` lists it from its
entry point, and core Dispytch never imports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).parents[3] / "dispytch-core" / "src"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env={**os.environ, **env}
    )


def test_dispytch_backends_lists_both_names() -> None:
    listed = run("-m", "dispytch", "backends", "--json")
    backends = {b["name"]: b for b in json.loads(listed.stdout)["backends"]}
    assert backends["nats"]["distribution"] == "dispytch-nats"
    assert backends["nats"]["schemes"] == ["nats"]
    assert "persistent" in backends["nats"]["capabilities"]
    assert backends["nats-core"]["distribution"] == "dispytch-nats"
    assert "persistent" not in backends["nats-core"]["capabilities"]


def test_core_does_not_import_it() -> None:
    mentions = [p for p in CORE.rglob("*.py") if "dispytch_nats" in p.read_text()]
    assert mentions == []
    script = (
        "import sys; from dispytch import EventEmitter, EventListener\n"
        "EventEmitter.from_url('memory://'); EventListener.from_url('memory://', group='g')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dispytch_nats', 'nats')))"
    )
    loaded = run("-c", script, DISPYTCH_PLUGINS="memory")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"

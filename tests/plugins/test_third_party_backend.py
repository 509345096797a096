"""A backend core knows nothing about, from its own distribution, plugs in through the
entry point and passes the same conformance suite as ours."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends import registry
from dispytch.testing import BackendUnderTest, ConformanceSuite, Probe, running

pytestmark = pytest.mark.usefixtures("sqlite_plugin")


class Note(EventBase):
    __topic__ = "notes.{author}"
    __event_type__ = "note"

    author: str
    text: str


class NoteBody(BaseModel):
    author: str
    text: str


def test_discovered_with_its_distribution() -> None:
    backend = registry().get("sqlite")
    assert (backend.distribution, backend.version) == ("dispytch-sqlite", "0.1.0")
    assert backend.capabilities.persistent
    assert registry().get("sqlite") is backend, "selectable by URL scheme too"


def test_listed_by_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dispytch.cli", "backends", "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    listed = {b["name"]: b for b in json.loads(out)["backends"]}
    assert listed["sqlite"]["distribution"] == "dispytch-sqlite"
    assert "memory" in listed


@pytest.mark.parametrize("by", ["name", "url"])
async def test_selectable_by_name_and_url(by: str, tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    if by == "name":
        emitter = EventEmitter.from_backend("sqlite", path=str(path))
        listener = EventListener.from_backend("sqlite", group="readers", path=str(path))
    else:
        emitter = EventEmitter.from_url(f"sqlite:///{path}")
        listener = EventListener.from_url(f"sqlite:///{path}", group="readers")
    probe = Probe()

    @listener.handler(topic="notes.{author}", event="note")
    async def read(event: Event[NoteBody]) -> None:
        probe.add(event.body)

    async with running(listener), emitter:
        await emitter.emit(Note(author="ada", text="hello"))
        [body] = await probe.wait_for(1)
    assert body == NoteBody(author="ada", text="hello")


class TestSQLiteConformance(ConformanceSuite):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> BackendUnderTest:
        from dispytch_sqlite.transport import SQLiteEventConfig

        return BackendUnderTest(
            "sqlite",
            {"path": str(tmp_path / "conformance.db"), "lease": 5.0},
            key_config=lambda key: SQLiteEventConfig(key=key),
        )

"""Every ```python block on the documentation site runs: in order, one namespace per page,
top-level `await` allowed. Pages use the memory backend where they need a broker. A page
written for one broker runs against a real one: the tests start it and put its address where
the page has the broker's usual local address, as a reader would."""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from markdown_code import CodeBlock, python_blocks, run_blocks

DOCS = Path(__file__).parents[2] / "docs"


@dataclass(frozen=True)
class LiveBroker:
    """A broker a page addresses at its usual local address."""

    fixture: str
    marker: str
    address: re.Pattern[str]
    live_address: str
    """The attribute of the fixture's server that replaces the address."""


LIVE_BROKERS = [
    LiveBroker("kafka_server", "kafka", re.compile(r"localhost:9092"), "bootstrap"),
    LiveBroker(
        "rabbitmq_server",
        "rabbitmq",
        re.compile(r"amqp://guest:guest@localhost(:5672)?/"),
        "url",
    ),
    LiveBroker("redis_server", "redis", re.compile(r"redis://localhost:6379/0"), "url"),
]
THIRD_PARTY = {"publishing-a-backend.md": "sqlite_plugin"}
"""Pages whose code uses the example third-party backend of tests/plugins."""


def _brokers(page: Path) -> list[LiveBroker]:
    code = "\n".join(block.code for block in python_blocks(page))
    return [broker for broker in LIVE_BROKERS if broker.address.search(code)]


def _params() -> list[Any]:
    pages = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p))
    return [
        pytest.param(
            page,
            id=str(page.relative_to(DOCS)),
            marks=[getattr(pytest.mark, broker.marker) for broker in _brokers(page)],
        )
        for page in pages
    ]


def test_the_site_has_code_to_run() -> None:
    assert len(_params()) >= 5


@pytest.mark.parametrize("page", _params())
async def test_every_python_block_of_the_page_runs(
    page: Path, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # files a page writes land in a fresh folder
    blocks = python_blocks(page)
    for broker in _brokers(page):
        live = getattr(request.getfixturevalue(broker.fixture), broker.live_address)
        blocks = [CodeBlock(b.page, b.line, broker.address.sub(live, b.code)) for b in blocks]
    fixture = THIRD_PARTY.get(str(page.relative_to(DOCS)))
    if fixture:
        request.getfixturevalue(fixture)
    page_module = ModuleType("docs_page")  # a real module, as a script's code has one
    monkeypatch.setitem(sys.modules, page_module.__name__, page_module)
    await asyncio.wait_for(run_blocks(blocks, vars(page_module)), timeout=60)

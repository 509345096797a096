"""The mkdocs hooks: backend tables generated from the code, and a navigation of the pages
that exist."""

from __future__ import annotations

from pathlib import Path

import pytest

import docs_hooks
from dispytch.backends.backend import Backend
from dispytch.backends.registry import registry

ROOT = Path(__file__).parents[2]
OURS = {folder.name for folder in ROOT.glob("dispytch-*") if folder.is_dir()}
"""The distributions of this repository, whose settings tables the site shows."""


@pytest.mark.parametrize(
    "backend",
    sorted((b for b in registry() if b.distribution in OURS), key=lambda b: b.name),
    ids=lambda b: b.name,
)
def test_every_setting_of_our_backends_says_what_it_means(backend: Backend) -> None:
    table = docs_hooks.on_page_markdown(f"<!-- dispytch:settings {backend.name} -->")
    rows = table.splitlines()[2:]
    assert len(rows) == len(backend.settings.model_fields)
    undocumented = [row.split("|")[1].strip() for row in rows if not row.split("|")[4].strip()]
    assert undocumented == [], "add a docstring under these fields of the settings model"


def test_a_capabilities_column_per_backend_and_per_settings() -> None:
    table = docs_hooks.on_page_markdown("<!-- dispytch:capabilities redis redis?mode=pubsub -->")
    head, _, *rows = table.splitlines()
    assert head.startswith("| capability | `redis` | `redis` with `mode=pubsub` |")
    persistent = next(row for row in rows if row.startswith("| `persistent` |"))
    assert persistent.split("|")[2:4] == [" yes ", " no "]


def test_an_unknown_backend_fails_the_build_naming_the_installed_ones() -> None:
    with pytest.raises(ValueError, match=r"not installed .*kafka"):
        docs_hooks.on_page_markdown("<!-- dispytch:settings kafak -->")


def test_the_navigation_keeps_only_pages_that_exist(tmp_path: Path) -> None:
    (tmp_path / "backends").mkdir()
    for page in ("index.md", "backends/kafka.md"):
        (tmp_path / page).write_text("# page\n")
    nav = [
        {"Home": "index.md"},
        {"Backends": [{"Kafka": "backends/kafka.md"}, {"SQS": "backends/sqs.md"}]},
        {"Later": [{"Performance": "performance.md"}]},
        {"Elsewhere": "https://example.org/"},
    ]
    config = docs_hooks.on_config({"docs_dir": str(tmp_path), "nav": nav})
    assert config["nav"] == [
        {"Home": "index.md"},
        {"Backends": [{"Kafka": "backends/kafka.md"}]},
        {"Elsewhere": "https://example.org/"},
    ]

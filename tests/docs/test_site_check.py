"""tools/site_check.py finds what breaks a page in a real browser: console errors, uncaught
exceptions, resources that fail to load, and content that is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

import site_check

GOOD = """<html><head><link rel="icon" href="data:,"></head>
<body><h1>Dispytch</h1><div id="dispytch.EventListener"></div>
<script>console.log("fine")</script></body></html>"""
BROKEN = """<html><head><link rel="icon" href="data:,"></head>
<body><h1>Dispytch</h1><img src="/missing.png">
<script>console.error("boom"); notAFunction();</script></body></html>"""


def lay_out(root: Path, pages: dict[str, str]) -> Path:
    for path, html in pages.items():
        (root / path).mkdir(parents=True, exist_ok=True)
        (root / path / "index.html").write_text(html)
    return root


def test_a_clean_site_passes_and_every_page_has_a_screenshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = lay_out(tmp_path / "site", {"": GOOD, "guide": GOOD, "reference/listener": GOOD})
    shots = tmp_path / "shots"
    assert site_check.main([str(site), "--screenshots", str(shots)]) == 0
    assert sorted(p.name for p in shots.iterdir()) == [
        "api-reference.png",
        "guide.png",
        "home.png",
    ]
    assert (shots / "home.png").read_bytes().startswith(b"\x89PNG")
    assert capsys.readouterr().out.count(": ok") == 3


def test_errors_in_the_browser_fail_the_check_and_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = lay_out(
        tmp_path / "site",
        {"": GOOD, "guide": BROKEN, "reference/listener": "<html><body><h1>x</h1></body></html>"},
    )
    assert site_check.main([str(site), "--screenshots", str(tmp_path / "shots")]) == 1
    out = capsys.readouterr().out
    assert "/): ok" in out  # the home page
    assert "console.error: boom" in out
    assert "ReferenceError: notAFunction is not defined" in out
    assert "missing.png" in out
    assert 'the page does not show [id="dispytch.EventListener"]' in out

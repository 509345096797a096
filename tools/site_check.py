"""Open the built documentation site in headless Chromium and check that pages render without
console errors, taking a screenshot of each.

    python tools/site_check.py site --screenshots .nox/screenshots

The site is served on a free loopback port; Chromium (the Debian package, installed with
apt-get when missing and running as root) is driven over the DevTools protocol with a fresh
profile and no network use of its own. Exits 1, listing them, when a page logs an error, throws,
fails to load a resource or lacks what it should show.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1000",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]
PAGES = {
    "home": ("", "h1"),
    "guide": ("guide/", "h1"),
    "api-reference": ("reference/listener/", '[id="dispytch.EventListener"]'),
}
"""Screenshot name -> (path in the site, a CSS selector the page must show)."""
STARTUP_TIMEOUT = 30.0
PAGE_TIMEOUT = 30.0
SETTLE = 1.0
"""Seconds a loaded page is left to run its scripts (search index, deferred code) before the
check, so that errors they log are seen."""


class SiteCheckError(RuntimeError):
    """The browser could not be started or driven."""


@dataclass
class PageReport:
    name: str
    url: str
    problems: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build's site_dir)")
    parser.add_argument("--screenshots", type=Path, required=True, help="folder for the PNGs")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"site_check: {args.site} has no index.html; build the site first", file=sys.stderr)
        return 2
    args.screenshots.mkdir(parents=True, exist_ok=True)
    with serve(args.site) as base, chromium() as browser:
        reports = [
            check_page(browser, name, base, *spec, args.screenshots) for name, spec in PAGES.items()
        ]
    failed = False
    for report in reports:
        status = "ok" if not report.problems else "FAILED"
        print(f"site_check: {report.name} ({report.url}): {status}")
        for problem in report.problems:
            print(f"    {problem}")
        failed = failed or bool(report.problems)
    return 1 if failed else 0


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve `site` over HTTP on a free loopback port; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium() -> Iterator[str]:
    """Start headless Chromium with a fresh profile; yields its DevTools HTTP address."""
    executable = _chromium_executable()
    # Chromium's helper processes may still be writing to the profile as it is removed.
    with tempfile.TemporaryDirectory(prefix="site-check-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so that its helpers end with it
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not (port_file.is_file() and port_file.read_text().strip()):
                if process.poll() is not None:
                    raise SiteCheckError(f"chromium exited with code {process.returncode}")
                if time.monotonic() > deadline:
                    raise SiteCheckError(f"chromium did not start within {STARTUP_TIMEOUT:.0f}s")
                time.sleep(0.1)
            yield f"127.0.0.1:{port_file.read_text().split()[0]}"
        finally:
            _end(process)


def _end(process: subprocess.Popen[bytes]) -> None:
    """Stop Chromium and every helper process it started."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _chromium_executable() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("site_check: installing chromium with apt-get", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
        found = shutil.which("chromium")
        if found:
            return found
    raise SiteCheckError("chromium is not installed: run `sudo apt-get install -y chromium`")


class DevTools:
    """One page's DevTools connection: commands, and the events that arrive meanwhile."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + PAGE_TIMEOUT
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise SiteCheckError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def wait_for(self, method: str) -> None:
        deadline = time.monotonic() + PAGE_TIMEOUT
        seen = len(self.events)
        while not any(e.get("method") == method for e in self.events[seen:]):
            self._receive(deadline)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._receive(deadline)
        except TimeoutError:
            pass

    def _receive(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        message: dict[str, Any] = json.loads(self.socket.recv(timeout=remaining))
        if "method" in message:
            self.events.append(message)
        return message


def check_page(
    browser: str, name: str, base: str, path: str, selector: str, screenshots: Path
) -> PageReport:
    url = base + path
    report = PageReport(name, url)
    target = _new_page(browser)
    with connect(target, max_size=None, open_timeout=PAGE_TIMEOUT) as socket:
        tools = DevTools(socket)
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        tools.call("Page.navigate", url=url)
        tools.wait_for("Page.loadEventFired")
        tools.drain(SETTLE)
        shown = tools.call(
            "Runtime.evaluate",
            expression=f"!!document.querySelector({json.dumps(selector)})",
            returnByValue=True,
        )
        if not shown.get("result", {}).get("value"):
            report.problems.append(f"the page does not show {selector}")
        shot = tools.call("Page.captureScreenshot", format="png")
        (screenshots / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
        report.problems.extend(_errors(tools.events))
    return report


def _new_page(browser: str) -> str:
    request = urllib.request.Request(f"http://{browser}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=PAGE_TIMEOUT) as response:
        target: dict[str, Any] = json.load(response)
    return str(target["webSocketDebuggerUrl"])


def _errors(events: list[dict[str, Any]]) -> Iterator[str]:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            yield f"uncaught exception: {text}"
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            yield f"console.{params['type']}: {text}"
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            yield f"{entry.get('source')} error: {entry.get('text')} {entry.get('url', '')}".strip()


if __name__ == "__main__":
    sys.exit(main())

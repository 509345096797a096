"""Every developer task: `nox` runs lint, typecheck and the tests; `nox -s demo` and `-s bench` too.

The whole suite, real brokers included, runs on one Python (`tests`); the suites that need no
broker and install nothing run on every other supported Python (`tests_core`), which keeps a CI
run well under 40 minutes while every version is still exercised. `tests` and `bench` install
dispytch-core compiled, as its release wheels are (see dispytch-core/pyproject.toml); the other
sessions, like `pip install ./dispytch-core`, the pure-Python build."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
DISTRIBUTIONS = [
    "./dispytch-core[msgpack,otel,prometheus,fastapi,reload,uvloop]",  # every integration
    "./dispytch-kafka",
    "./dispytch-rabbitmq",
    "./dispytch-redis",
    "./dispytch-nats",
    "./dispytch-sqs",
]
COMPILED = DISTRIBUTIONS[:2]
"""The distributions with modules that mypyc compiles (see their pyproject.toml)."""
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]
FULL_SUITE_PYTHON = "3.11"
BROKERLESS = [
    "--ignore=tests/integration",
    "--ignore=tests/plugins/test_fresh_environment.py",
    "-m",
    "not kafka and not rabbitmq and not redis",  # documentation pages run against a broker
]
"""pytest arguments that leave out the suites needing brokers or fresh pip installs."""

nox.options.sessions = ["lint", "typecheck", "tests", "tests_core", "docs"]
nox.options.reuse_existing_virtualenvs = True


def _expose_pyenv_versions() -> None:
    """Put pyenv's installed 3.x interpreters on PATH as `python3.x`: its shims only
    resolve the versions named in `pyenv global`, so nox would not find the others."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    links = ROOT / ".nox" / "pythons"
    links.mkdir(parents=True, exist_ok=True)
    for version in SUPPORTED:
        found = sorted(versions.glob(f"{version}.*/bin/python{version}"))
        link = links / f"python{version}"
        link.unlink(missing_ok=True)
        if found:
            link.symlink_to(found[-1])
    os.environ["PATH"] = f"{links}{os.pathsep}{os.environ['PATH']}"


def _runs(version: str) -> bool:
    try:
        return subprocess.run([f"python{version}", "-c", ""], capture_output=True).returncode == 0
    except OSError:
        return False


_expose_pyenv_versions()
OTHER_PYTHONS = [v for v in SUPPORTED if v != FULL_SUITE_PYTHON and _runs(v)]


def _install(
    session: nox.Session, *groups: str, editable: bool = False, compiled: bool = False
) -> None:
    """Install the dependency `groups` and every distribution; with `compiled`, as their
    release wheels are built: dispytch-core's per-message path and the Kafka consumer's
    per-record work compiled by mypyc."""
    session.install(*nox.project.dependency_groups(PYPROJECT, *groups))
    flag = ["-e"] if editable else []
    distributions, env = DISTRIBUTIONS, None
    if compiled:
        distributions = [
            _copy(session, dist) if dist in COMPILED else dist for dist in DISTRIBUTIONS
        ]
        env = {"HATCH_BUILD_HOOK_ENABLE_MYPYC": "1"}
    session.install(*(arg for dist in distributions for arg in (*flag, dist)), env=env)
    if compiled:
        session.run("python", "-m", "dispytch.build", "--require-compiled")


def _copy(session: nox.Session, distribution: str) -> str:
    """`distribution` (a path with extras) copied to the session's temporary directory:
    mypyc leaves the modules it compiles beside their sources, where they would shadow the
    sources an editable install imports."""
    path, _, extras = distribution.partition("[")
    copy = Path(session.create_tmp()) / Path(path).name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ROOT / path, copy, ignore=shutil.ignore_patterns("*cache*", "*.so"))
    return f"{copy}[{extras}" if extras else str(copy)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the four distributions."""
    _install(session, "typecheck", editable=True)
    session.run("mypy")


@nox.session(python=FULL_SUITE_PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite against real brokers started on free loopback ports, on the
    compiled build (`tests_core` runs the pure-Python one)."""
    _install(session, "test", compiled=True)
    session.run("pytest", *session.posargs)


@nox.session(python=OTHER_PYTHONS)
def tests_core(session: nox.Session) -> None:
    """The suites that need no broker, on every other supported Python that is installed."""
    _install(session, "test")
    session.run("pytest", *BROKERLESS, *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The demo on the memory backend."""
    session.install("./dispytch-core")
    session.run("dispytch", "demo")


@nox.session
def bench(session: nox.Session) -> None:
    """Events/second through Dispytch next to hand-written loops and FastStream; writes a table.
    Dispytch runs as its release wheels are built, compiled."""
    _install(session, "bench", compiled=True)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site: `mkdocs build --strict`, then its home, guide and API reference
    pages opened in headless Chromium, which must show them without console errors."""
    _install(session, "docs")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("python", "tools/site_check.py", "site", "--screenshots", "site/screenshots")

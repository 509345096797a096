"""Fresh virtual environments, as a new user has them: the README's first command in a venv
that holds nothing else, then core plus each backend distribution, one at a time.

A dependency missing from a distribution's metadata fails here. The backend environments
reuse the core environment (a `.pth` file puts its site-packages on their path) and
are installed into by its pip, so each only adds the backend and what it declares.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BIN = "Scripts" if sys.platform == "win32" else "bin"
BACKENDS = {
    "kafka": "kafka://localhost:9092",
    "rabbitmq": "amqp://guest:guest@localhost/",
    "redis": "redis://localhost:6379",
    "nats": "nats://localhost:4222",
    "sqs": "sqs://localhost:4566?region=us-east-1",
}


@dataclass(frozen=True)
class FreshEnv:
    """A virtual environment and the environment variables that make it the active one."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / BIN / "python"

    @property
    def variables(self) -> dict[str, str]:
        variables = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        variables["VIRTUAL_ENV"] = str(self.path)
        variables["PATH"] = f"{self.path / BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        return variables

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `args` with this environment active, from the repository root."""
        return subprocess.run(
            args,
            cwd=ROOT,
            env=self.variables,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def site_packages(self) -> Path:
        return Path(
            self.run(
                str(self.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
            ).stdout.strip()
        )


def readme_first_command() -> str:
    """The first line of the README's first shell block, without its comment."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block, "README.md has no ```bash block"
    return block.group(1).splitlines()[0].split("#")[0].strip()


@pytest.fixture(scope="module")
def readme_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[FreshEnv, subprocess.CompletedProcess[str]]:
    """A bare venv in which the README's first command ran, and how it went."""
    env = FreshEnv(tmp_path_factory.mktemp("fresh") / "core")
    venv.create(env.path, with_pip=True)
    return env, env.run("bash", "-c", readme_first_command())


@pytest.fixture(scope="module")
def core_env(readme_run: tuple[FreshEnv, subprocess.CompletedProcess[str]]) -> FreshEnv:
    env, result = readme_run
    if result.returncode != 0:
        pytest.fail(f"the README's first command failed:\n{result.stdout}\n{result.stderr}")
    return env


def test_the_readmes_first_command_runs_the_demo_in_a_bare_venv(
    readme_run: tuple[FreshEnv, subprocess.CompletedProcess[str]],
) -> None:
    env, result = readme_run
    assert readme_first_command() == (
        "python -m pip install ./dispytch-core && python -m dispytch demo"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "listener stopped gracefully" in result.stdout
    installed = env.run(str(env.python), "-m", "pip", "list", "--format=json").stdout
    assert "pytest" not in {d["name"] for d in json.loads(installed)}


def test_testing_helpers_import_without_pytest_and_the_kit_says_what_to_install(
    core_env: FreshEnv,
) -> None:
    helpers = core_env.run(
        str(core_env.python),
        "-c",
        "from dispytch.testing import Probe, TestClient, running; print('ok')",
    )
    assert helpers.stdout.strip() == "ok", helpers.stderr

    kit = core_env.run(str(core_env.python), "-c", "from dispytch.testing import ConformanceSuite")
    assert kit.returncode == 1
    last_line = kit.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: ")
    assert "pip install pytest" in last_line


def test_backends_emit_and_run_work_with_core_alone(core_env: FreshEnv, tmp_path: Path) -> None:
    listed = core_env.run("dispytch", "backends", "--json")
    assert [b["name"] for b in json.loads(listed.stdout)["backends"]] == ["memory"], listed.stderr

    emitted = core_env.run(
        "dispytch", "emit", "--backend", "memory://", "--topic", "t", "--type", "x", "--body", "{}"
    )
    assert emitted.returncode == 0, emitted.stderr

    (tmp_path / "fresh_app.py").write_text(
        textwrap.dedent(
            """
            from dispytch import EventListener

            listener = EventListener.from_url("memory://", group="fresh")

            @listener.handler(topic="t", event="x")
            async def handle() -> None: ...
            """
        )
    )
    variables = core_env.variables | {"PYTHONPATH": str(tmp_path)}
    with subprocess.Popen(
        ["dispytch", "run", "fresh_app:listener"],
        cwd=ROOT,
        env=variables,
        stderr=subprocess.PIPE,
        text=True,
    ) as service:
        assert service.stderr is not None
        announced = service.stderr.readline()
        service.send_signal(signal.SIGINT)
        rest = service.communicate(timeout=60)[1]
    assert service.returncode == 0, announced + rest


@pytest.fixture(scope="module")
def backend_envs(
    core_env: FreshEnv, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, FreshEnv]:
    """For each backend, a venv holding core (from `core_env`) plus that backend alone."""
    core_site = core_env.site_packages()
    envs: dict[str, FreshEnv] = {}
    for name in BACKENDS:
        env = FreshEnv(tmp_path_factory.mktemp("fresh") / name)
        venv.create(env.path, with_pip=False)
        env.site_packages().joinpath("core-env.pth").write_text(f"{core_site}\n")
        installed = core_env.run(
            str(core_env.python),
            "-m",
            "pip",
            "--python",
            str(env.python),
            "install",
            f"./dispytch-{name}",
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
        envs[name] = env
    return envs


def test_every_backend_distribution_of_the_repository_is_installed_alone() -> None:
    found = ROOT.glob("dispytch-*/pyproject.toml")
    folders = {p.parent.name.removeprefix("dispytch-") for p in found}
    assert sorted(folders - {"core"}) == sorted(BACKENDS)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_core_plus_one_backend_lists_it_and_builds_a_listener_on_it(
    backend_envs: dict[str, FreshEnv], name: str
) -> None:
    env = backend_envs[name]
    listed = env.run(str(env.python), "-m", "dispytch", "backends", "--json")
    report = json.loads(listed.stdout)
    assert name in [b["name"] for b in report["backends"]]
    assert {b["distribution"] for b in report["backends"]} == {"dispytch-core", f"dispytch-{name}"}
    assert report["problems"] == []

    build = textwrap.dedent(
        f"""
        from dispytch import EventEmitter, EventListener

        listener = EventListener.from_url({BACKENDS[name]!r}, group="fresh")

        @listener.handler(topic="orders", event="order_placed")
        async def handle() -> None: ...

        backend = listener.backend
        consumer = backend.create_consumer(listener.backend_settings, listener.subscription)
        producer = EventEmitter.from_url({BACKENDS[name]!r}).producer
        print(type(consumer).__module__, type(producer).__module__)
        """
    )
    built = env.run(str(env.python), "-c", build)
    assert built.returncode == 0, built.stderr
    consumer_module, producer_module = built.stdout.split()
    assert consumer_module.startswith(f"dispytch_{name}.")
    assert producer_module.startswith(f"dispytch_{name}.")

"""In a fresh virtual environment with only dispytch-core installed, `dispytch backends`
lists `memory`; after installing dispytch-kafka it lists `kafka` as well."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_installing_a_backend_distribution_adds_its_backend(tmp_path: Path) -> None:
    venv.create(tmp_path / "env", with_pip=True)
    bin_dir = tmp_path / "env" / ("Scripts" if sys.platform == "win32" else "bin")

    def pip_install(*targets: Path) -> None:
        subprocess.run(
            [
                bin_dir / "python",
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *map(str, targets),
            ],
            check=True,
            timeout=600,
        )

    def backends() -> list[str]:
        out = subprocess.run(
            [bin_dir / "dispytch", "backends"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        return [line.split()[0] for line in out.splitlines()[1:]]

    pip_install(ROOT / "dispytch-core")
    assert backends() == ["memory"]
    pip_install(ROOT / "dispytch-core", ROOT / "dispytch-kafka")
    assert backends() == ["kafka", "memory"]

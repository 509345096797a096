"""Which build of Dispytch is installed: pure Python, or with its per-message path
compiled to C by mypyc (as release wheels are built; see docs/performance.md).

`python -m dispytch.build` prints it; with `--require-compiled` it exits with status 1
when nothing is compiled.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

from dispytch.backends.registry import ENTRY_POINT_GROUP


def compiled_modules() -> list[str]:
    """The modules compiled to C in this installation, of dispytch-core and of the backend
    distributions installed beside it; empty for pure-Python builds."""
    packages = {"dispytch"}
    packages.update(e.value.split(".")[0] for e in entry_points(group=ENTRY_POINT_GROUP))
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            root = Path(location)
            for path in root.rglob("*"):
                if path.name.endswith(suffixes) and "__mypyc" not in path.name:  # not its runtime
                    parts = path.relative_to(root).parent.parts
                    found.append(".".join((package, *parts, path.name.split(".")[0])))
    return sorted(found)


def description(modules: list[str]) -> str:
    """One line naming the build whose compiled modules are `modules`."""
    if not modules:
        return "pure Python"
    return f"compiled by mypyc ({', '.join(m.removeprefix('dispytch.') for m in modules)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dispytch.build", description=__doc__)
    parser.add_argument(
        "--require-compiled", action="store_true", help="exit with 1 if nothing is compiled"
    )
    args = parser.parse_args(argv)
    modules = compiled_modules()
    print(f"dispytch: {description(modules)}")
    if args.require_compiled and not modules:
        print(
            "expected a compiled build: install Dispytch with HATCH_BUILD_HOOK_ENABLE_MYPYC=1 "
            "in the environment (which needs a C compiler)"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

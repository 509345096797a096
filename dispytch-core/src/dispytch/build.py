"""Which build of dispytch-core is installed: pure Python, or with its per-message path
compiled to C by mypyc (as release wheels are built; see docs/performance.md).

`python -m dispytch.build` prints it; with `--require-compiled` it exits with status 1
when nothing is compiled.
"""

from __future__ import annotations

import argparse
import importlib.machinery
from pathlib import Path


def compiled_modules() -> list[str]:
    """The modules of this installation compiled to C; empty for the pure-Python build."""
    package = Path(__file__).parent
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for path in package.rglob("*"):
        if path.name.endswith(suffixes):
            parts = path.relative_to(package).parent.parts
            found.append(".".join(("dispytch", *parts, path.name.split(".")[0])))
    return sorted(found)


def description() -> str:
    """One line naming the build, for reports and logs."""
    modules = compiled_modules()
    if not modules:
        return "pure Python"
    return f"compiled by mypyc ({', '.join(m.removeprefix('dispytch.') for m in modules)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dispytch.build", description=__doc__)
    parser.add_argument(
        "--require-compiled", action="store_true", help="exit with 1 if nothing is compiled"
    )
    args = parser.parse_args(argv)
    print(f"dispytch-core: {description()}")
    if args.require_compiled and not compiled_modules():
        print(
            "expected a compiled build: install with HATCH_BUILD_HOOK_ENABLE_MYPYC=1 "
            "(pip install ./dispytch-core), which needs a C compiler"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The ```python blocks of a Markdown page, and running them as the docs promise: in order,
in one namespace per page, with top-level `await` allowed."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class CodeBlock:
    page: Path
    line: int
    """The line of the page the code starts on."""
    code: str


def python_blocks(page: Path) -> list[CodeBlock]:
    text = page.read_text(encoding="utf-8")
    return [
        CodeBlock(
            page,
            text.count("\n", 0, found.start("code")) + 1,
            textwrap.dedent(found.group("code")),
        )
        for found in _FENCE.finditer(text)
    ]


async def run_blocks(blocks: list[CodeBlock], namespace: dict[str, Any]) -> None:
    """Run `blocks` one after another in `namespace`, awaiting top-level `await`s; a failure
    points at the page and line it came from."""
    for block in blocks:
        source = "\n" * (block.line - 1) + block.code  # tracebacks give the page's line numbers
        code = compile(source, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            await result

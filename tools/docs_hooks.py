"""mkdocs hooks: each backend page's settings and capabilities tables, generated from the
backend's registration and settings model so they are written once, in the code; and a
navigation that leaves out the pages not written yet.

A page asks for the tables with `<!-- dispytch:settings NAME -->` and
`<!-- dispytch:capabilities NAME1 [NAME2 ...] -->`, NAME being a registered backend name; in
the capabilities table, `NAME?field=value&...` is a column for the backend with those settings.
"""

from __future__ import annotations

import ast
import enum
import inspect
import logging
import re
import textwrap
import types
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import parse_qsl

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from dispytch.backends.backend import Backend
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.registry import registry

log = logging.getLogger("mkdocs.hooks.dispytch")
_MARKER = re.compile(r"<!--\s*dispytch:(settings|capabilities)\s+([\w.?&= -]+?)\s*-->")


def on_config(config: Any, **_: Any) -> Any:
    """Drop navigation entries whose page does not exist (yet), so the site lists the pages it
    has; `mkdocs build` says which it left out."""
    docs = Path(config["docs_dir"])
    config["nav"] = _existing(config["nav"], docs)
    return config


def _existing(nav: Any, docs: Path) -> Any:
    kept = []
    for entry in nav:
        title, target = next(iter(entry.items())) if isinstance(entry, dict) else (None, entry)
        if isinstance(target, list):
            target = _existing(target, docs)
            if not target:
                continue
        elif isinstance(target, str) and "://" not in target and not (docs / target).is_file():
            log.info("the page %s is not written yet; left out of the navigation", target)
            continue
        kept.append({title: target} if title is not None else target)
    return kept


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace each marker with its table."""
    return _MARKER.sub(lambda found: _table(found.group(1), found.group(2)), markdown)


def _table(kind: str, specs: str) -> str:
    if kind == "settings":
        return settings_table(_backend(specs.strip()).settings)
    columns = []
    for spec in specs.split():
        name, _, query = spec.partition("?")
        backend = _backend(name)
        heading = f"`{name}` with `{query.replace('&', '`, `')}`" if query else f"`{name}`"
        try:
            settings = backend.settings.model_validate(dict(parse_qsl(query)))
        except ValueError:  # settings without defaults: what the backend declares
            columns.append((heading, backend.capabilities))
            continue
        columns.append((heading, backend.capabilities_for(settings)))
    return capabilities_table(columns)


def _backend(name: str) -> Backend:
    found = registry()
    for backend in found:
        if backend.name == name:
            return backend
    installed = ", ".join(sorted(b.name for b in found))
    raise ValueError(f"the docs ask for backend {name!r}, which is not installed ({installed})")


def settings_table(model: type[BaseModel]) -> str:
    """A Markdown table of `model`'s fields: setting, type, default and meaning."""
    notes = attribute_docstrings(model)
    rows = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for field_name, info in model.model_fields.items():
        meaning = info.description or notes.get(field_name, "")
        rows.append(
            f"| `{field_name}` | {_type(info.annotation)} | {_default(info)} | "
            f"{' '.join(meaning.split())} |"
        )
    return "\n".join(rows)


def capabilities_table(columns: list[tuple[str, Capabilities]]) -> str:
    """A Markdown table of every capability, whether each column's backend offers it, and
    what it means."""
    notes = attribute_docstrings(Capabilities)
    head = " | ".join(heading for heading, _ in columns)
    rows = [f"| capability | {head} | what it means |", "|---|" + ":-:|" * len(columns) + "---|"]
    for field in fields(Capabilities):
        marks = " | ".join(_offered(getattr(c, field.name)) for _, c in columns)
        meaning = " ".join(notes.get(field.name, "").split())
        rows.append(f"| `{field.name}` | {marks} | {meaning} |")
    return "\n".join(rows)


def _offered(value: Any) -> str:
    """`yes`/`no` for a feature; a limit (a number, or None for none) as it is."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else f"{value:,}"


def attribute_docstrings(cls: type) -> dict[str, str]:
    """The docstrings written under class attributes, from `cls` and its bases."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ in ("builtins", "pydantic.main"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        for node, after in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                found[node.target.id] = inspect.cleandoc(after.value.value)
    return found


def _type(annotation: Any) -> str:
    return _type_text(annotation).replace("|", "\\|")


def _type_text(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(f"`{value!r}`" for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_text(arg) for arg in get_args(annotation))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else _type_text(a) for a in get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(f"`{member.value!r}`" for member in annotation)
    return getattr(annotation, "__name__", str(annotation))


def _default(info: Any) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = str(value)  # a SecretURL shows its URL with the password masked
    elif isinstance(value, tuple | list):
        value = ",".join(map(str, value))
    elif isinstance(value, enum.Enum):
        value = value.value
    return f"`{value}`" if value not in ("",) else '`""`'

"""Config-key reference for the docs site, generated from the config dataclasses themselves.

Every config field carries a one-line attribute docstring (STYLE habit 2); this module reads them
from the source with ``ast`` and renders one Markdown table per section, so the reference is never
written twice. It is also the MkDocs hook (``hooks:`` in mkdocs.yml): a page line
``<!-- config: llmrec.config.RunConfig -->`` is replaced by the tables of that dataclass and of
every dataclass it nests.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import textwrap
import typing
from typing import Any

MARKER = re.compile(r"^<!-- config: ([\w.]+)(?: as (\S+))? -->$", re.M)


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literal right under each annotated field."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        return "(section)" if dataclasses.is_dataclass(value) else repr(value)
    return "required"


def _type(tp: Any) -> str:
    # "or" instead of "|": a bar would split the Markdown table cell
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "").replace(" | ", " or ")


def tables(cls: type, prefix: str = "") -> str:
    """Markdown: one table for ``cls`` (keys under ``prefix``), then one per nested section."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    rows, nested = [], []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            nested.append((hints[f.name], f"{key}."))
            rows.append(f"| `{key}` | section | | {docs.get(f.name, '') or 'see below'} |")
            continue
        doc = docs.get(f.name, "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{_type(hints[f.name])}` | `{_default(f)}` | {doc} |")
    title = f"### `{prefix.rstrip('.') or cls.__name__}` ({cls.__module__}.{cls.__name__})"
    out = [title, "", "| key | type | default | what it does |", "|---|---|---|---|", *rows, ""]
    for sub, sub_prefix in nested:
        out.append(tables(sub, sub_prefix))
    return "\n".join(out)


def render(markdown: str) -> str:
    def one(m: re.Match) -> str:
        module, _, name = m.group(1).rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        return tables(cls, m.group(2) + "." if m.group(2) else "")

    return MARKER.sub(one, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # MkDocs hook
    return render(markdown)

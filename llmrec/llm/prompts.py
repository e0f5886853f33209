"""Prompt templates as data files under ``prompts/`` (YAML), checked and hashed at load.

A template file::

    name: explanation
    description: ...
    placeholders: [user_tokens, item_tokens, title]
    system: "Explain why ..."        # optional
    examples:                        # optional few-shot turns (no placeholders)
      - {user: "...", assistant: "..."}
    user: "user record: {user_tokens} item record: {item_tokens} item name: {title}"

Placeholders use ``{name}`` syntax; every declared placeholder must appear in the text and every
``{name}`` in the text must be declared, else the load fails naming the file and placeholder. The
template's hash (sha256 of the file bytes, 12 hex digits) goes into every artifact that used it.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmrec.errors import ConfigError

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"  # shipped inside the package (wheel)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    placeholders: tuple[str, ...]
    user: str
    system: str | None = None
    description: str = ""
    examples: tuple[tuple[str, str], ...] = ()
    """Few-shot (user, assistant) turns placed before the real user message."""
    sha256: str = ""
    path: str = ""

    @property
    def hash(self) -> str:
        return self.sha256[:12]

    def instruction(self) -> str:
        """The fixed text of the prompt (system text and the user template's literal parts, every
        placeholder left out): what an output that echoes its prompt copies."""
        literal = " ".join(lit for lit, *_ in string.Formatter().parse(self.user))
        return f"{self.system or ''} {literal}"

    def fields_in(self, text: str) -> list[str]:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]

    def render(self, **values: Any) -> list[str | Any]:
        """Segments of the user message: text pieces, with non-string values (e.g. soft-token
        tensors) left in place so the assembler can splice them."""
        missing = [p for p in self.placeholders if p not in values]
        extra = [k for k in values if k not in self.placeholders]
        if missing or extra:
            raise ConfigError(f"prompt {self.name!r}: missing values {missing}, unknown values {extra}")
        segments: list[Any] = []
        for literal, field_name, spec, _ in string.Formatter().parse(self.user):
            if literal:
                segments.append(literal)
            if field_name is not None:
                value = values[field_name]
                segments.append(format(value, spec) if isinstance(value, (str, int, float)) else value)
        merged: list[Any] = []  # join adjacent strings
        for seg in segments:
            if merged and isinstance(seg, str) and isinstance(merged[-1], str):
                merged[-1] += seg
            else:
                merged.append(seg)
        return merged

    def messages(self, **values: Any) -> list[dict[str, Any]]:
        """Chat messages; the user content is a list of segments (see :meth:`render`)."""
        out: list[dict[str, Any]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for user, assistant in self.examples:
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        out.append({"role": "user", "content": self.render(**values)})
        return out


def load_prompt(name_or_path: str | Path) -> PromptTemplate:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))
        raise ConfigError(f"prompt template {name_or_path!r} not found (known: {known})")
    raw = path.read_bytes()
    try:
        spec = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    allowed = {"name", "description", "placeholders", "system", "user", "examples"}
    if not isinstance(spec, dict) or "user" not in spec:
        raise ConfigError(f"{path}: a template needs at least a 'user' text")
    unknown = set(spec) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown template key(s) {sorted(unknown)}; known: {sorted(allowed)}")
    declared = tuple(spec.get("placeholders") or ())
    examples = []
    for i, ex in enumerate(spec.get("examples") or []):
        if not isinstance(ex, dict) or set(ex) != {"user", "assistant"}:
            raise ConfigError(f"{path}: examples[{i}] must be a mapping with 'user' and 'assistant'")
        examples.append((str(ex["user"]), str(ex["assistant"])))
    tmpl = PromptTemplate(name=spec.get("name", path.stem), placeholders=declared, user=spec["user"],
                          system=spec.get("system"), description=spec.get("description", ""),
                          examples=tuple(examples),
                          sha256=hashlib.sha256(raw).hexdigest(), path=str(path))
    used = tmpl.fields_in(tmpl.user) + (tmpl.fields_in(tmpl.system) if tmpl.system else [])
    if tmpl.system and tmpl.fields_in(tmpl.system):
        raise ConfigError(f"{path}: placeholders belong in 'user', found {tmpl.fields_in(tmpl.system)} in 'system'")
    undeclared = sorted(set(used) - set(declared))
    unused = sorted(set(declared) - set(used))
    if undeclared:
        raise ConfigError(f"{path}: placeholder(s) {undeclared} used but not declared in 'placeholders'")
    if unused:
        raise ConfigError(f"{path}: placeholder(s) {unused} declared but not used in the text")
    return tmpl


def list_prompts() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))

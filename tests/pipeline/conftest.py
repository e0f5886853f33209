"""A tiny pipeline: a random RecBole-format dataset, a config-built LLM saved as a local HF folder
(no download), real MiniLM for the sentence embeddings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import write_atomic_dataset
from tests.llm.conftest import tiny_lm, tiny_tokenizer


def tiny_llm_folder(path: Path) -> Path:
    tok = tiny_tokenizer()
    tiny_lm("llama", len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_values(root: Path, llm: Path, out: str = "run") -> dict:
    data = write_atomic_dataset(root / "tiny", n_users=14, n_items=30, per_user=10)
    return {
        "kind": "pipeline", "out_dir": out,
        "data": {"source": "recbole", "path": str(data), "max_len": 8, "cache_dir": str(root / "cache")},
        "backbone": {"name": "sasrec", "hidden": 16, "n_layers": 1, "n_heads": 1, "inner": 32},
        "train": {"epochs": 2, "batch_size": 32, "progress": False, "metric": "ndcg@5"},
        "eval": {"ks": [5]},
        "tokenizer": {"model": {"n_micro": 2, "chunk_dim": 8, "codebook_size": 16,
                                "min_entities_per_code": 2},
                      "semantic": {"item_text_phrases": True},
                      "train": {"epochs": 1, "batch_size": 64, "text_batch_size": 16, "progress": False}},
        "interests": {"extract": {"llm": str(llm), "k": 3, "batch_size": 4, "max_new_tokens": 10}},
        "align": {"model": {"llm": str(llm), "dtype": "float32"},
                  "teacher": {"model": str(llm), "max_new_tokens": 12, "batch_size": 8},
                  "train": {"max_train_pairs": 8, "batch_size": 4, "max_target_tokens": 12, "progress": False,
                            "checkpoint_every": 1}},
        "explain": {"users": 2, "top_k": 2, "max_new_tokens": 8, "bootstrap": 100},
    }


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    return tiny_llm_folder(tmp_path_factory.mktemp("llm") / "tiny-llama")


@pytest.fixture
def tiny_pipeline(tmp_path: Path, tiny_llm: Path) -> Path:
    """A pipeline YAML whose out_dir ("run") is relative: run it with the file's folder as cwd."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tiny_values(tmp_path, tiny_llm)))
    return path


@pytest.fixture(scope="session")
def finished_pipeline(tmp_path_factory, tiny_llm) -> Path:
    """A finished tiny pipeline run (absolute out_dir) for the serving and explorer tests."""
    from llmrec.pipeline import load_pipeline_config, run_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    values = tiny_values(root, tiny_llm, out=str(root / "run"))
    values["explain"]["users"] = 3
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(values))
    run_pipeline(load_pipeline_config(path))
    return root / "run"

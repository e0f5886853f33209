"""A tiny stage-1 run and a config-built LLM for stage-2 tests (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrec.alignment.config import AlignRunConfig
from llmrec.config import from_dict
from tests.llm.conftest import tiny_lm, tiny_tokenizer
from tests.tokenizer.conftest import HashEncoder, tiny_overrides, write_xrec


@pytest.fixture(scope="session")
def stage1(tmp_path_factory) -> Path:
    """A trained tiny tokenizer run on the tiny XRec-style data."""
    from llmrec.config import DataConfig
    from llmrec.tokenizer.config import load_tokenizer_config
    from llmrec.tokenizer.train import run

    root = tmp_path_factory.mktemp("stage1")
    cfg = load_tokenizer_config(None, tiny_overrides(root / "run", **{"train.epochs": 1}))
    cfg.data = DataConfig(source="xrec", path=str(write_xrec(root / "xr", n_users=40)), cache_dir=str(root / "cache"),
                          zero_shot_ratio=0.1)
    run(cfg, encoder=HashEncoder())
    return root / "run"


def tiny_backend(seed: int = 0):
    from llmrec.llm.hf import HFBackend

    tok = tiny_tokenizer()
    return HFBackend(tiny_lm("llama", len(tok), seed=seed), tokenizer=tok, batch_size=4)


def align_cfg(stage1: Path, out: Path, **model) -> AlignRunConfig:
    return from_dict(AlignRunConfig, {
        "model": {"tokenizer_run": str(stage1), "dtype": "float32", "variant": "beat", **model},
        "train": {"max_train_pairs": 12, "batch_size": 4, "lr": 1e-2, "max_target_tokens": 12, "out_dir": str(out),
                  "progress": False, "checkpoint_every": 1},
        "eval": {"max_pairs": 6, "max_new_tokens": 6, "batch_size": 4, "bootstrap": 200},
    })

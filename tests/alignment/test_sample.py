"""Evaluation samples: the seeded max_pairs sample of a split and its untouched remainder (``_rest``)."""

from __future__ import annotations

import pandas as pd
import pytest

from llmrec.alignment.pairs import sample
from llmrec.errors import ConfigError
from llmrec.experiments.compare import eval_rows, log_held_out
from tests.alignment.conftest import align_cfg


def _frame() -> pd.DataFrame:
    split = ["train"] * 5 + ["test"] * 10 + ["valid"] * 3
    return pd.DataFrame({"id": [f"p{i}" for i in range(18)], "user": range(18), "item": range(100, 118),
                         "split": split})


def test_rest_is_the_split_minus_its_sample():
    frame = _frame()
    for seed in range(5):
        part, rest = sample(frame, "test", 4, seed), sample(frame, "test_rest", 4, seed)
        assert len(part) == 4 and len(rest) == 6
        assert sorted(part["id"].tolist() + rest["id"].tolist()) == sorted(frame.loc[frame["split"] == "test", "id"])
        assert rest["id"].tolist() == sorted(rest["id"], key=lambda s: int(s[1:]))  # the file's order
    assert sample(frame, "test", 4, 0)["id"].tolist() != sample(frame, "test", 4, 1)["id"].tolist()
    assert len(sample(frame, "valid_rest", 4, 0)) == 0  # a sample of 4 holds all 3 valid pairs
    assert len(sample(frame, "test_rest", None, 0)) == 0


def test_rest_split_config(stage1, tmp_path):
    cfg = align_cfg(stage1, tmp_path)
    cfg.eval.splits = ["test_rest"]
    cfg.check(models=False)
    cfg.eval.splits = ["tset"]
    with pytest.raises(ConfigError, match=r"unknown split\(s\) \['tset'\]"):
        cfg.check(models=False)
    frame = _frame()
    cfg.eval.splits, cfg.eval.max_pairs = ["valid_rest"], 4
    with pytest.raises(ConfigError, match="valid_rest is empty"):
        eval_rows(cfg, frame)
    cfg.eval.splits = ["test", "test_rest"]
    rows = eval_rows(cfg, frame)
    assert len(rows["test"]) == 4 and len(rows["test_rest"]) == 6


def test_rest_of_a_held_out_split_is_logged(tmp_path):
    log_held_out(tmp_path, "generate", "valid_rest", ["a"], n=3)
    assert not (tmp_path / "test_evaluations.jsonl").exists()
    log_held_out(tmp_path, "generate", "test_rest", ["a"], n=3)
    assert '"split": "test_rest"' in (tmp_path / "test_evaluations.jsonl").read_text()

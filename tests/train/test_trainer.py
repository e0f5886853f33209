"""Seeded repeatability, resume after interruption, checkpoints, early stopping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmrec.config import RunConfig, from_dict
from llmrec.train.checkpoint import load_checkpoint, load_model
from llmrec.train.run import run
from tests.conftest import benchmark_module, crash_then_resume


def tiny_run(tiny_cfg, out, **train) -> RunConfig:
    return from_dict(RunConfig, {
        "data": {**vars(tiny_cfg)},
        "backbone": {"name": "sasrec", "hidden": 16, "n_layers": 1, "inner": 32, "dropout": 0.3},
        "train": {"epochs": 4, "batch_size": 8, "out_dir": str(out), "progress": False, "patience": 100,
                  **train},
        "eval": {"ks": [5, 10]},
    })


def losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_seeded_runs_repeat_exactly(tiny_cfg, tmp_path):
    a = run(tiny_run(tiny_cfg, tmp_path / "a"))
    b = run(tiny_run(tiny_cfg, tmp_path / "b"))
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert a["test"] == b["test"]
    sa = load_checkpoint(tmp_path / "a" / "last.safetensors")["model"]
    sb = load_checkpoint(tmp_path / "b" / "last.safetensors")["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    run(tiny_run(tiny_cfg, tmp_path / "c", seed=7))
    assert losses(tmp_path / "c") != losses(tmp_path / "a")


def test_resume_after_interruption_matches_uninterrupted(tiny_cfg, tmp_path, monkeypatch):
    run(tiny_run(tiny_cfg, tmp_path / "full"))
    crashed_epochs = []

    def start():  # crash in the third epoch, after two epochs were checkpointed
        if (tmp_path / "resumed" / "metrics.jsonl").exists():
            crashed_epochs.append(len(losses(tmp_path / "resumed")))
        return run(tiny_run(tiny_cfg, tmp_path / "resumed"))

    out = crash_then_resume(monkeypatch, start)
    assert crashed_epochs == [2]
    assert out["resumed"] is True
    assert losses(tmp_path / "resumed") == losses(tmp_path / "full")  # no duplicate lines
    full = load_checkpoint(tmp_path / "full" / "last.safetensors")["model"]
    res = load_checkpoint(tmp_path / "resumed" / "last.safetensors")["model"]
    assert all(torch.equal(full[k], res[k]) for k in full)


def test_checkpoint_holds_config_and_vocabularies(tiny_cfg, tmp_path):
    out = run(tiny_run(tiny_cfg, tmp_path / "r", epochs=2))
    ckpt = load_checkpoint(tmp_path / "r" / "best.safetensors")
    assert ckpt["item_vocab"][0] == "[PAD]" and ckpt["user_vocab"][0] == "u1"
    assert ckpt["run_config"]["backbone"]["hidden"] == 16
    assert ckpt["backbone"]["n_items"] == len(ckpt["item_vocab"]) - 1
    model, _ = load_model(tmp_path / "r" / "best.safetensors")
    assert model.config.hidden == 16
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["test"]["ndcg@10"] == pytest.approx(out["test"]["ndcg@10"])
    assert "| NDCG |" in (tmp_path / "r" / "results.md").read_text()


def test_early_stopping(tiny_cfg, tmp_path):
    out = run(tiny_run(tiny_cfg, tmp_path / "r", lr=0.0, epochs=20, patience=2))
    # with lr 0 the validation metric never improves after the first evaluation
    assert out["epochs"] == 3 and out["best_epoch"] == 1 and out["stopped_by"] == "early stopping"


def test_a_valid_only_run_computes_no_test_metric(tiny_cfg, tmp_path):
    full = run(tiny_run(tiny_cfg, tmp_path / "full"))
    cfg = tiny_run(tiny_cfg, tmp_path / "sel")
    cfg.eval.test = False
    sel = run(cfg)
    assert sel["test"] is None and "eval.test=false" in sel["test_skipped"]
    # the same training and selection as the full run, only the test evaluation is left out
    assert sel["best_valid_ndcg@10"] == full["best_valid_ndcg@10"] and sel["best_epoch"] == full["best_epoch"]
    saved = json.loads((tmp_path / "sel" / "results.json").read_text())
    assert saved["test"] is None and not (tmp_path / "sel" / "test_per_user.npz").exists()
    assert "validation only" in (tmp_path / "sel" / "results.md").read_text()


def test_kept_selection_runs_drop_checkpoints_and_still_make_the_selection_table(tiny_cfg, tmp_path):
    # benchmarks/keep_runs.py on a folder of valid-only runs (a learning-rate grid), then
    # benchmarks/valid_selection.py reading the kept copy
    root = Path(__file__).resolve().parents[2]
    for lr in (0.01, 0.001):
        cfg = tiny_run(tiny_cfg, tmp_path / "select" / "sasrec" / f"lr{lr}", lr=lr, epochs=2)
        cfg.eval.test = False
        run(cfg)
    unfinished = tmp_path / "select" / "sasrec" / "lr0.1"  # interrupted: epochs logged, no results.json
    unfinished.mkdir()
    (unfinished / "metrics.jsonl").write_text('{"epoch": 1, "loss": 1.0}\n')
    kept = tmp_path / "kept"
    subprocess.run([sys.executable, str(root / "benchmarks" / "keep_runs.py"), str(tmp_path / "select"),
                    "--dest", str(kept)], check=True, capture_output=True)
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file())
    assert files == [f"sasrec/lr{lr}/{name}" for lr in (0.001, 0.01)
                     for name in ("metrics.jsonl", "results.json", "results.md")]
    selection = benchmark_module("valid_selection")
    collect, markdown = selection.collect, selection.markdown
    rows = {r["lr"]: r for r in collect(kept)}
    for lr in (0.01, 0.001):
        saved = json.loads((tmp_path / "select" / "sasrec" / f"lr{lr}" / "results.json").read_text())
        assert rows[lr]["valid"] == saved["best_valid_ndcg@10"] and rows[lr]["epochs"] == 2
        assert rows[lr]["train_rows"] == "all"
    # a run on the target behaviour's rows alone says so in the table
    table = markdown([rows[0.01], {**rows[0.001], "train_rows": "target"}]).splitlines()
    assert "| sasrec (target-behaviour rows only) | full softmax | 0.001 |" in table[-2]
    assert "| sasrec | full softmax | 0.01 |" in table[-1]


def test_load_for_eval_rebuilds_the_split_and_refuses_changed_items(tiny_cfg, tiny_dir, tmp_path):
    # what `llmrec eval` and benchmarks/mclmr_confounder.py load: the run's own valid split, and a
    # clear error when the source now holds other items than the model was trained on
    from llmrec.data.prepare import TRAIN
    from llmrec.errors import ConfigError
    from llmrec.train.checkpoint import load_for_eval
    from tests.conftest import write_atomic_dataset

    cfg = tiny_run(tiny_cfg, tmp_path / "run", epochs=1)
    cfg.eval.test = False
    run(cfg)
    ckpt_path = tmp_path / "run" / "best.safetensors"
    _, _, _, data, examples, popularity = load_for_eval(ckpt_path, "valid")
    assert len(examples.users) == data.n_users
    assert popularity.sum() == (data.split == TRAIN).sum() and popularity[0] == 0
    write_atomic_dataset(tiny_dir, n_items=40, seed=1)  # the source changed under the run
    with pytest.raises(ConfigError, match="item vocabulary differs"):
        load_for_eval(ckpt_path, "valid")
    with pytest.raises(ConfigError, match="does not exist"):
        load_for_eval(tmp_path / "none.safetensors")

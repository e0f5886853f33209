"""EIMF end to end on the real MovieLens-100k: the ESIM job (real MiniLM texts, real Affinity
Propagation; the LLM replaced by a deterministic genre reader so the test runs in a minute) feeds
IBIM's semantic losses; the trained IBIM then scores users from its checkpoint alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmrec.config import RunConfig, from_dict
from llmrec.interests.config import load_interests_config
from llmrec.interests.job import run_job
from llmrec.train.run import run
from tests.conftest import needs_ml100k
from tests.interests.conftest import scripted_answer

ROOT = Path(__file__).resolve().parents[2]


@needs_ml100k
@pytest.mark.slow
def test_ibim_trains_with_esim_interests_of_real_users_and_serves_without_them(tmp_path):
    esim = load_interests_config(ROOT / "configs" / "interests" / "ml100k.yaml",
                                 [f"out_dir={tmp_path / 'esim'}", f"data.cache_dir={tmp_path / 'cache'}",
                                  "extract.backend=hf"])
    stats = run_job(esim, progress=False, generate=lambda batch: [scripted_answer(m) for m in batch])
    assert stats["clusters"] >= 10
    cfg = from_dict(RunConfig, {
        "data": {"source": "ml-100k", "split": "loo", "cache_dir": str(tmp_path / "cache")},
        "backbone": {"name": "ibim", "hidden": 32, "n_interests": 3, "attn_hidden": 64},
        "train": {"epochs": 1, "out_dir": str(tmp_path / "ibim"), "progress": False, "metric": "ndcg@20"},
        "semantic": {"interests": str(tmp_path / "esim"), "align_weight": 0.1, "predict_weight": 0.1},
        "eval": {"ks": [20]},
    })
    out = run(cfg)
    assert out["semantic"]["users_covered"] == out["users"] == 943
    assert out["semantic"]["clusters"] == stats["clusters"]
    record = json.loads((tmp_path / "ibim" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["loss_align"] > 0 and 0 < record["loss_predict"] < 2
    assert out["test"]["ndcg@20"] > 0.01  # popularity-level or better after one epoch, not noise (~0.001)
    ckpt = tmp_path / "ibim" / "best.safetensors"
    items = [[0] * 45 + [1, 50, 100, 181, 258]]
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "backbones" / "llm_free_child.py"), str(ckpt),
                           json.dumps(items)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["forbidden_modules"] == [] and report["data_files_opened"] == [str(ckpt)]
    assert torch.isfinite(torch.tensor(report["scores"])).all()

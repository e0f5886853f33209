"""`llmrec report`: a page with tables and plots for a run folder and an ablation folder; bad logs named."""

from __future__ import annotations

import json

import pytest

from llmrec.cli import main as cli
from llmrec.config import RunConfig, from_dict
from llmrec.errors import DataError
from llmrec.experiments.report import report
from llmrec.train.run import run


def test_report_for_a_run_and_an_ablation_folder(tiny_cfg, tmp_path, capsys):
    cfg = from_dict(RunConfig, {"data": {**vars(tiny_cfg)}, "backbone": {"name": "sasrec", "hidden": 16, "n_layers": 1},
                                "train": {"epochs": 2, "batch_size": 8, "out_dir": str(tmp_path / "r"),
                                          "progress": False, "metric": "ndcg@5"}, "eval": {"ks": [5]}})
    run(cfg)
    assert cli(["report", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.md").read_text()
    assert "| NDCG |" in page and "![curves](report_curves.png)" in page and "validation ndcg@5" not in page
    assert "2 epochs; right panel: valid_ndcg@5." in page
    assert (tmp_path / "r" / "report_curves.png").read_bytes()[:4] == b"\x89PNG"

    from llmrec.experiments import ablate

    ab = {"base": {"data": {**vars(tiny_cfg)}, "train": {"epochs": 1, "batch_size": 8, "metric": "ndcg@5"},
                   "eval": {"ks": [5]}},
          "backbones": {"sasrec": {"hidden": 16, "n_layers": 1}}, "seeds": [0], "variants": ["default"],
          "custom": {"default": {}}, "baseline": None, "metrics": ["hr@5"]}
    ablate.run_ablation(ab, tmp_path / "ab", progress=False)
    page = report(tmp_path / "ab").read_text()
    assert "| sasrec | " in page and "![results](results.png)" in page and "## Validation curves" in page


def test_bad_folders_and_logs_are_named(tmp_path):
    with pytest.raises(DataError, match="no such run folder"):
        report(tmp_path / "missing")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 2.0}) + "\n{oops\n")
    with pytest.raises(DataError, match=r"metrics.jsonl line 2: not JSON"):
        report(tmp_path)

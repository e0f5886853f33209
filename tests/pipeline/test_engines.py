"""The pipeline config selects the engines of its heavy steps: torchrun (2 CPU processes, gloo) for
the backbone, Ray Data actors for the ESIM extraction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmrec.pipeline import load_pipeline_config
from llmrec.pipeline.steps import run_backbone, run_interests


def test_torchrun_engine_trains_the_backbone_with_two_processes(tiny_pipeline: Path, tmp_path: Path):
    cfg = load_pipeline_config(tiny_pipeline, ["engines.train=torchrun", "engines.nproc=2",
                                               f"out_dir={tmp_path / 'run'}"])
    summary = run_backbone(cfg, Path(cfg.out_dir))
    results = json.loads((tmp_path / "run" / "backbone" / "results.json").read_text())
    assert results["world_size"] == 2  # the trainer saw torchrun's WORLD_SIZE
    assert summary["test"] == results["test"] and summary["epochs"] == 2


def test_ray_engine_runs_the_esim_extraction(tiny_pipeline: Path, tmp_path: Path):
    ray = pytest.importorskip("ray", reason="ray[data] is a dev dependency: pip install -e '.[dev]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = load_pipeline_config(tiny_pipeline, ["engines.extract=ray", f"out_dir={tmp_path / 'run'}"])
        stats = run_interests(cfg, Path(cfg.out_dir))
    finally:
        ray.shutdown()
    assert stats["engine"] == "ray" and stats["complete"]
    assert (tmp_path / "run" / "interests" / "artifact" / "interests.jsonl").exists()

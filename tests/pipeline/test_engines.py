"""The pipeline config selects the engines of its heavy steps: torchrun (2 CPU processes, gloo) for
the backbone, Ray Data actors for the ESIM extraction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmrec.errors import ConfigError
from llmrec.pipeline import load_pipeline_config
from llmrec.pipeline.steps import run_backbone, run_interests


def test_torchrun_engine_trains_the_backbone_with_two_processes(tiny_pipeline: Path, tmp_path: Path):
    cfg = load_pipeline_config(tiny_pipeline, ["engines.train=torchrun", "engines.nproc=2",
                                               f"out_dir={tmp_path / 'run'}"])
    summary = run_backbone(cfg, Path(cfg.out_dir))
    results = json.loads((tmp_path / "run" / "backbone" / "results.json").read_text())
    assert results["world_size"] == 2  # the trainer saw torchrun's WORLD_SIZE
    assert summary["test"] == results["test"] and summary["epochs"] == 2


def test_a_failing_torchrun_worker_names_its_own_error(tiny_pipeline: Path, tmp_path: Path):
    # before, the message held torchrun's summary lines only ("exitcode: 1 ... error_file: <N/A>")
    cfg = load_pipeline_config(tiny_pipeline, ["engines.train=torchrun", "engines.nproc=2",
                                               "backbone.name=dspnet", f"out_dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError) as err:
        run_backbone(cfg, Path(cfg.out_dir))
    assert "needs ['scenes']" in str(err.value)  # the worker's ConfigError, not torchrun's summary
    log = tmp_path / "run" / "backbone" / "torchrun.log"
    assert str(log) in str(err.value) and "Traceback" in log.read_text()


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

"""ESIM on real data and a real LLM: MovieLens-100k clustering, SmolLM2 through the local and the
Ray Data engines (a one-node Ray on this machine)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from llmrec.config import DataConfig
from llmrec.interests.config import load_interests_config
from llmrec.interests.job import run_job
from tests.conftest import needs_ml100k

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="ray[data] is a dev dependency: pip install -e '.[dev]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_equals_local_engine_with_smollm2(job_cfg, tmp_path, ray_session):
    base = dataclasses.replace(job_cfg, extract=dataclasses.replace(job_cfg.extract, max_new_tokens=24, batch_size=2))
    local = run_job(dataclasses.replace(base, out_dir=str(tmp_path / "local")), progress=False)
    ray_cfg = dataclasses.replace(base, out_dir=str(tmp_path / "ray"),
                                  extract=dataclasses.replace(base.extract, engine="ray"))
    distributed = run_job(ray_cfg, progress=False)
    assert distributed["engine"] == "ray" and distributed["complete"]
    assert distributed["representatives"] == local["representatives"] == 3

    def answers(folder):
        return [(r["id"], r["attempts"], r["status"]) for r in
                map(json.loads, (tmp_path / folder / "llm_job.jsonl").read_text().splitlines())]

    assert answers("ray") == answers("local")  # same greedy answers, same repairs and fallbacks
    assert (tmp_path / "ray" / "artifact" / "interests.jsonl").read_text() == \
        (tmp_path / "local" / "artifact" / "interests.jsonl").read_text()


@needs_ml100k
@pytest.mark.slow
def test_ml100k_config_clusters_real_users_with_20x_fewer_calls(tmp_path):
    """The shipped config on the embedded MovieLens-100k, up to the LLM (dry run)."""
    cfg = load_interests_config(ROOT / "configs" / "interests" / "ml100k.yaml",
                                [f"out_dir={tmp_path / 'esim'}", f"data.cache_dir={tmp_path / 'cache'}",
                                 "extract.llm=smollm2-135m"])  # the config's Qwen comes with `make models`
    assert cfg.data == DataConfig(source="ml-100k", cache_dir=str(tmp_path / "cache"))
    stats = run_job(cfg, dry_run=True, progress=False)
    assert stats["users"] == stats["users_with_text"] == 943
    assert stats["ap_converged"] and stats["cluster_method"] == "dense"
    assert stats["calls_saved_factor"] >= 20 and stats["llm_calls_to_make"] == stats["clusters"]

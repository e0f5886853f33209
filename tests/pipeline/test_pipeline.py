"""`llmrec pipeline` end to end on a tiny config: every step runs, a rerun is all cache hits with the
same report, a changed setting reruns only the steps below it, and a kill -9 mid-run resumes to the
same report as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from llmrec.errors import ConfigError
from llmrec.pipeline import load_pipeline_config, run_pipeline
from tests.pipeline.conftest import tiny_values

STEPS = ["backbone", "tokenizer", "interests", "backbone_signals", "teacher", "align", "explain"]


def _run(config: Path, *overrides: str) -> dict:
    cwd = os.getcwd()
    os.chdir(config.parent)  # out_dir is relative to the config's folder
    try:
        return run_pipeline(load_pipeline_config(config, list(overrides)))
    finally:
        os.chdir(cwd)


def test_pipeline_runs_every_step_then_reuses_them(tiny_pipeline: Path):
    first = _run(tiny_pipeline)
    assert list(first["steps"]) == STEPS
    assert all(s["cache"] == "ran" for s in first["steps"].values())
    run = tiny_pipeline.parent / "run"
    report = json.loads((run / "report.json").read_text())
    assert [u["user"] for u in report["users"]] == report["explanations"]["users"]
    assert len(report["users"]) == 2
    for u in report["users"]:
        assert len(u["recommendations"]) == 2
        assert u["interests_status"] in ("ok", "repaired", "fallback", "inherited")
        assert u["interests_answer"] in ("ok", "repaired", "fallback")  # a random tiny LLM: mostly fallback
        for r in u["recommendations"]:
            assert r["explanation"].strip()
            assert r["evidence"]["text"] and r["evidence"]["titles"]  # every tiny item has a title
            assert r["title"] not in r["evidence"]["titles"]  # never the target item itself (titles are unique here)
            assert set(r["control"]["checks"]) == set(r["checks"])
            assert r["control"]["donor"]["user"] != u["user"] and r["control"]["donor"]["item"] != r["item"]
    assert set(report["ranking"]["runs"]) == {"plain", "+ ESIM signals"}
    m = report["ranking"]["runs"]["plain"]["metrics"]["ndcg@5"]
    assert m["ci_low"] <= m["mean"] <= m["ci_high"]
    assert "difference" in report["ranking"] and "difference" in report["explanations"]
    for name in ("report.md", "report.html", "plots/ranking.png", "plots/explanations.png"):
        assert (run / name).stat().st_size > 0
    html = (run / "report.html").read_text()
    assert "<script" not in html and "http" not in html  # self-contained, nothing fetched
    before = (run / "report.json").read_bytes()

    second = _run(tiny_pipeline)
    assert {n: s["cache"] for n, s in second["steps"].items()} == {n: "hit" for n in STEPS}
    assert (run / "report.json").read_bytes() == before

    third = _run(tiny_pipeline, "explain.top_k=1")
    cache = {n: s["cache"] for n, s in third["steps"].items()}
    assert cache == {**{n: "hit" for n in STEPS[:-1]}, "explain": "ran"}
    assert all(len(u["recommendations"]) == 1 for u in third["users"])

    fourth = _run(tiny_pipeline, "explain.top_k=1", "signals.align_weight=0.2")
    cache = {n: s["cache"] for n, s in fourth["steps"].items()}
    assert cache == {"backbone": "hit", "tokenizer": "hit", "interests": "hit", "backbone_signals": "ran",
                     "teacher": "hit", "align": "ran", "explain": "ran"}


def test_kill9_mid_run_resumes_to_the_same_report(tiny_pipeline: Path, tmp_path: Path, tiny_llm: Path):
    """Uninterrupted in A, killed (SIGKILL) in B while a later step runs, then rerun: same report."""
    a, b = tmp_path / "a", tmp_path / "b"
    for where in (a, b):
        where.mkdir()
        values = tiny_values(tmp_path, tiny_llm)  # same data folder and cache for both
        (where / "pipeline.yaml").write_text(yaml.safe_dump(values))
    cmd = [sys.executable, "-m", "llmrec", "pipeline", "-c", "pipeline.yaml"]
    subprocess.run(cmd, cwd=a, check=True, capture_output=True)
    proc = subprocess.Popen(cmd, cwd=b, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_in = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        for step in ("align", "teacher", "backbone-signals", "interests"):
            marker = b / "run" / step / "step.json"
            if marker.exists() and '"running"' in marker.read_text():
                killed_in = step
                break
        if killed_in:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        time.sleep(0.02)
    assert killed_in is not None, "the pipeline finished before it could be killed"
    rerun = subprocess.run(cmd, cwd=b, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    states = json.loads((b / "run" / "run.json").read_text())
    assert "hit" in {s["cache"] for s in states.values()}
    assert states[killed_in.replace("-", "_")]["cache"] == "resumed"
    ra, rb = (json.loads((w / "run" / "report.json").read_text()) for w in (a, b))
    assert ra == rb


def test_stage_sections_are_checked_before_anything_runs(tiny_pipeline: Path):
    with pytest.raises(ConfigError, match="tokenizer.model.nope"):
        load_pipeline_config(tiny_pipeline, ["tokenizer.model.nope=1"])
    with pytest.raises(ConfigError, match="interests.data"):
        load_pipeline_config(tiny_pipeline, ["interests.data.source=ml-100k"])
    with pytest.raises(ConfigError, match="align"):
        load_pipeline_config(tiny_pipeline, ["align.train.out_dir=elsewhere"])
    with pytest.raises(ConfigError, match="backbone"):
        load_pipeline_config(tiny_pipeline, ["backbone.name=nope"])

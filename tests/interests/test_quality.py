"""Coverage and personal AUC by hand, and the calls-vs-quality curve end to end (scripted LLM)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.experiments.curve import run_curve
from llmrec.interests.quality import coverage, personal_auc
from tests.interests.conftest import scripted_answer

# items 1..4 on the axes of a 2-d space (id 0 = padding); interests along x for user 0, y for user 1
ITEMS = np.array([[0, 0], [1, 0], [0.6, 0.8], [0, 1], [0.8, 0.6]], dtype=np.float32)
EMB = np.array([[[1, 0], [0, 0]], [[0, 1], [0, 0]]], dtype=np.float32)  # (U=2, K=2, D=2)
W = np.array([[0.9, 0.0], [0.5, 0.0]], dtype=np.float32)  # second slot is padding


def test_coverage_by_hand():
    soft, hit = coverage(EMB, W, ITEMS, [np.array([1, 2]), np.array([2, 3, 4])], tau=0.7)
    assert soft[0] == pytest.approx((1.0 + 0.6) / 2) and hit[0] == pytest.approx(0.5)
    assert soft[1] == pytest.approx((0.8 + 1.0 + 0.6) / 3) and hit[1] == pytest.approx(2 / 3)
    soft, _ = coverage(EMB, np.zeros_like(W), ITEMS, [np.array([1]), np.array([2])])
    assert np.isnan(soft).all()  # no interests -> no score


def test_personal_auc_by_hand():
    held = [np.array([1]), np.array([3])]
    # user 0 scores item 1 (own) at 1.0 vs item 3 (user 1's) at 0.0 -> AUC 1; same for user 1
    auc = personal_auc(EMB, W, ITEMS, held, seen=[np.array([1]), np.array([3])])
    assert auc.tolist() == [1.0, 1.0]
    # the same interests for everyone: own and others' items swap -> 1 and 0
    same = np.repeat(EMB[:1], 2, 0)
    assert personal_auc(same, W, ITEMS, held, seen=[np.array([1]), np.array([3])]).tolist() == [1.0, 0.0]
    # an item the user has seen is never a negative; with no negative left the user gets NaN
    assert np.isnan(personal_auc(EMB, W, ITEMS, held, seen=[np.array([1, 3]), np.array([3])])[0])


def test_curve_end_to_end(job_cfg, tmp_path):
    result = run_curve(job_cfg, ["median", "min"], n_reference=6, results_dir=tmp_path / "curve", progress=False,
                       generate=lambda ms: [scripted_answer(m) for m in ms])
    own, floor, *points = result["points"]
    assert own["clusters"] == 6 and floor["clusters"] == 0
    # planted genre groups: interests of one's own genre rank one's own held-out items first
    assert 0.3 < floor["personal_auc"]["mean"] < 0.7
    for p in [own, *points]:
        assert p["personal_auc"]["mean"] > 0.8 > floor["personal_auc"]["mean"] + 0.1, p
    assert all(p["calls_saved_factor"] == pytest.approx(24 / p["clusters"]) for p in points)
    saved = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert len(saved["points"]) == 4 and (tmp_path / "curve" / "curve.png").stat().st_size > 0
    assert "| median" in (tmp_path / "curve" / "curve.md").read_text()


def test_curve_downstream_trains_the_backbone_with_each_points_interests(job_cfg, tmp_path, monkeypatch):
    from llmrec.experiments.ablate import load_ablation

    ab = load_ablation(None, ["data.source=recbole", f"data.path={job_cfg.data.path}",
                              f"data.cache_dir={job_cfg.data.cache_dir}", "data.max_len=6",
                              "train.epochs=2", "train.batch_size=8", "train.progress=false", "eval.ks=[20]",
                              "train.metric=ndcg@20"],
                       backbones=["ibim"], variants=["plain"])  # the curve supplies the interests
    ab["backbones"]["ibim"] = {"hidden": 16, "n_interests": 2, "attn_hidden": 16}
    spec = {"ablation": ab, "backbone": "ibim", "seed": 0}
    scripted = lambda ms: [scripted_answer(m) for m in ms]  # noqa: E731
    result = run_curve(job_cfg, ["median", "min"], n_reference=6, results_dir=tmp_path / "curve", progress=False,
                       generate=scripted, downstream=spec)
    points = result["points"][2:]
    runs = Path(job_cfg.out_dir) / "curve_downstream"
    assert not (tmp_path / "curve" / "downstream").exists()  # runs and checkpoints stay out of the results
    plain = json.loads((runs / "plain" / "ibim" / "plain" / "seed0" / "results.json").read_text())
    for p in points:
        d = p["downstream"]
        assert d["plain_ndcg@20"] == plain["test"]["ndcg@20"]
        done = json.loads((runs / f"pref-{p['preference']}" / "ibim" / "esim" / "seed0" / "results.json").read_text())
        assert done["semantic"]["users_covered"] == 24 and done["semantic"]["clusters"] == p["clusters"]
        assert d["esim_ndcg@20"] == done["test"]["ndcg@20"]
        assert d["ndcg@20_gain"]["mean_diff"] == pytest.approx(d["esim_ndcg@20"] - d["plain_ndcg@20"], abs=1e-6)
    assert "ibim test NDCG@20 with these interests" in result["markdown"]
    # a rerun: answers and trained runs are on record, so neither the LLM nor training is touched
    monkeypatch.setattr("llmrec.interests.extract.load_backend", lambda *a, **k: pytest.fail("loaded an LLM"),
                        raising=False)
    monkeypatch.setattr("llmrec.llm.factory.load_backend", lambda *a, **k: pytest.fail("loaded an LLM"))
    monkeypatch.setattr("llmrec.train.run.run", lambda *a, **k: pytest.fail("retrained"))
    again = run_curve(job_cfg, ["median", "min"], n_reference=6, results_dir=tmp_path / "curve", progress=False,
                      downstream=spec)
    assert [p.get("downstream") for p in again["points"]] == [p.get("downstream") for p in result["points"]]

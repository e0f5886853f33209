"""Coverage and personal AUC by hand, and the calls-vs-quality curve end to end (scripted LLM)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.interests.curve import run_curve
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

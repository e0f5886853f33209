"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmrec.eval.bootstrap import paired_bootstrap
from llmrec.eval.metrics import rank_metrics


def test_single_target_by_hand():
    # user 0: target item 2 ranked 3rd (scores 0.9, 0.8 above it); user 1: target 4 ranked 1st;
    # user 2: target 1 ranked last of 5 -> outside top 3
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1, 0.0],
                           [0.1, 0.2, 0.3, 0.4, 0.9],
                           [0.5, 0.0, 0.6, 0.7, 0.8]])
    targets = torch.zeros(3, 5, dtype=torch.bool)
    targets[0, 2] = targets[1, 4] = targets[2, 1] = True
    m = rank_metrics(scores, targets, [1, 3, 5])
    assert m["hr@1"].tolist() == [0, 1, 0]
    assert m["hr@3"].tolist() == [1, 1, 0]
    assert m["ndcg@3"].tolist() == pytest.approx([1 / math.log2(4), 1.0, 0.0])
    assert m["ndcg@5"].tolist() == pytest.approx([1 / math.log2(4), 1.0, 1 / math.log2(6)])
    assert m["mrr@3"].tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    assert m["mrr@5"].tolist() == pytest.approx([1 / 3, 1.0, 1 / 5])
    assert m["recall@3"].tolist() == m["hr@3"].tolist()


def test_several_targets_by_hand():
    # ranking: item 0, 1, 2, 3; targets {1, 3}
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    targets = torch.tensor([[False, True, False, True]])
    m = rank_metrics(scores, targets, [2, 4])
    assert m["hr@2"].item() == 1
    assert m["recall@2"].item() == pytest.approx(0.5)
    dcg2 = 1 / math.log2(3)
    idcg2 = 1 + 1 / math.log2(3)
    assert m["ndcg@2"].item() == pytest.approx(dcg2 / idcg2)
    dcg4 = 1 / math.log2(3) + 1 / math.log2(5)
    assert m["ndcg@4"].item() == pytest.approx(dcg4 / idcg2)
    assert m["recall@4"].item() == 1.0
    assert m["mrr@4"].item() == pytest.approx(0.5)


def test_excluded_items_never_rank():
    scores = torch.tensor([[float("-inf"), 5.0, 1.0]])
    targets = torch.tensor([[False, False, True]])
    assert rank_metrics(scores, targets, [1])["hr@1"].item() == 0
    assert rank_metrics(scores, targets, [2])["hr@2"].item() == 1


def test_paired_bootstrap():
    a = np.zeros(500)
    b = np.r_[np.ones(250), np.zeros(250)]
    out = paired_bootstrap(a, b, seed=0)
    assert out["mean_diff"] == pytest.approx(0.5)
    assert out["ci_low"] < 0.5 < out["ci_high"]
    assert out["ci_high"] - out["ci_low"] == pytest.approx(2 * 1.96 * 0.5 / math.sqrt(500), rel=0.15)
    same = paired_bootstrap(b, b)
    assert same["ci_low"] == same["ci_high"] == 0.0

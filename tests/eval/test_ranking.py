"""The evaluator on a fixed-score model: masking, batching and sampled mode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from llmrec.backbones.base import Backbone
from llmrec.config import EvalConfig
from llmrec.data.sequences import EvalExamples
from llmrec.eval.ranking import evaluate


@dataclass
class FixedConfig:
    n_items: int = 5


class Fixed(Backbone):
    """Item i scores i for every user: higher ids rank first."""

    config_class = FixedConfig

    def __init__(self, config):
        super().__init__(config)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def loss(self, batch):
        return self.w.sum()

    def encode(self, batch):
        return torch.ones(batch["items"].size(0), 1)

    def item_embeddings(self):
        return torch.arange(self.config.n_items + 1, dtype=torch.float).unsqueeze(1)


def examples(history: list[list[int]], targets: list[list[int]]) -> EvalExamples:
    n = len(history)
    csr = lambda rows: (np.cumsum([0] + [len(r) for r in rows]), np.concatenate(rows).astype(np.int64))  # noqa: E731
    inputs = {f: np.zeros((n, 3), np.int64) for f in ("item", "behaviors", "scene")}
    return EvalExamples(np.arange(n), inputs, csr(history), csr(targets), 1)


def test_history_is_masked_and_batches_agree():
    # ranking by id: 5, 4, 3, 2, 1. user 0 saw 5 and 4 -> target 3 is first; user 1 saw nothing -> 3rd
    ex = examples([[5, 4], [1]], [[3], [3]])
    model = Fixed(FixedConfig())
    r = evaluate(model, ex, EvalConfig(ks=[1, 3]), n_items=5)
    assert r.per_user["hr@1"].tolist() == [1, 0]
    assert r.per_user["ndcg@3"].tolist() == pytest.approx([1.0, 0.5])
    r1 = evaluate(model, ex, EvalConfig(ks=[1, 3], batch_size=1), n_items=5)
    assert r1.metrics == r.metrics
    assert r.metrics["hr@1"] == pytest.approx(0.5)


def test_sampled_mode_ranks_against_negatives_only():
    ex = examples([[1]], [[2]])
    model = Fixed(FixedConfig())
    # 2 negatives from {3, 4, 5} (never 1: history, never 2: target) -> target 2 ranks last of 3
    r = evaluate(model, ex, EvalConfig(ks=[1, 3], mode="sampled", n_negatives=2), n_items=5)
    assert r.mode == "sampled"
    assert r.per_user["hr@1"].tolist() == [0] and r.per_user["hr@3"].tolist() == [1]
    assert r.per_user["mrr@3"].tolist() == pytest.approx([1 / 3])
    with pytest.raises(ValueError, match="negatives"):
        evaluate(model, ex, EvalConfig(mode="sampled", n_negatives=4), n_items=5)


def test_popularity_sampler_prefers_popular_items():
    ex = examples([[1]] * 200, [[2]] * 200)
    model = Fixed(FixedConfig())
    pop = np.array([0, 0, 0, 1000.0, 1e-6, 1e-6])  # item 3 dominates
    r = evaluate(model, ex, EvalConfig(ks=[1], mode="sampled", n_negatives=1, sampler="popularity"),
                 n_items=5, popularity=pop)
    # the one negative is nearly always item 3, which outranks item 2 -> hr@1 = 0 almost always
    assert r.metrics["hr@1"] < 0.05


def test_exposure_share_of_the_most_popular_items():
    # 10 items: the most popular 10% is one item, id 2 (count 9). Fixed ranks 10, 9, 8, ...
    pop = np.array([0, 1, 9, 1, 1, 1, 1, 1, 1, 1, 1], dtype=float)
    model = Fixed(FixedConfig(n_items=10))
    ex = examples([[10, 9, 8, 7, 6, 5, 4, 3], [1]], [[2], [3]])
    r = evaluate(model, ex, EvalConfig(ks=[1, 5]), n_items=10, popularity=pop)
    # user 0: only 2 and 1 are rankable; the other top-5 slots hold masked (-inf) items, none popular
    # user 1: top-5 = 10, 9, 8, 7, 6 -> no slot for item 2
    assert r.per_user["pop10_share@1"].tolist() == [1.0, 0.0]
    assert r.per_user["pop10_share@5"].tolist() == pytest.approx([0.2, 0.0])
    assert "pop10_share@5" not in evaluate(model, ex, EvalConfig(ks=[5]), n_items=10).metrics  # no counts


def test_popularity_groups_split_the_interaction_mass_in_thirds():
    from llmrec.eval.popularity import by_popularity, popularity_groups

    pop = np.array([0, 30, 20, 10, 10, 10, 5, 5, 5, 5], dtype=float)  # 100 interactions
    # cumulative shares by rank: .30 .50 .60 .70 .80 .85 .90 .95 1.0
    assert popularity_groups(pop).tolist() == [2, 0, 1, 1, 2, 2, 2, 2, 2, 2]
    per_user = {"hr@1": np.array([1.0, 0.0, 1.0, 1.0])}
    out = by_popularity(per_user, np.array([1, 2, 3, 9]), pop)
    assert out["head"] == {"users": 1, "hr@1": 1.0} and out["mid"] == {"users": 2, "hr@1": 0.5}
    assert out["tail"] == {"users": 1, "hr@1": 1.0}

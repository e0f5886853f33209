import numpy as np
import torch

from llmrec.eval.baselines import RecentItems


def test_recent_items_rank_latest_first_then_popularity():
    popularity = np.array([0, 5, 1, 9, 3, 7])  # item 0 is padding
    model = RecentItems(popularity)
    batch = {"items": torch.tensor([[0, 0, 2, 4, 2], [0, 0, 0, 0, 0]])}
    scores = model.score(batch)
    order = scores.argsort(dim=1, descending=True)[:, :5]
    # user 0: item 2 (latest, position 5) before 4 (position 4), then 3, 5, 1 by popularity
    assert order[0].tolist() == [2, 4, 3, 5, 1]
    # no history: popularity alone
    assert order[1].tolist() == [3, 5, 1, 4, 2]
    assert torch.isinf(scores[:, 0]).all()
    popular = RecentItems(popularity, window=False).score(batch).argsort(dim=1, descending=True)[:, :5]
    assert popular.tolist() == [[3, 5, 1, 4, 2]] * 2


def test_recent_items_score_through_the_evaluator():
    from llmrec.config import EvalConfig
    from llmrec.data.sequences import EvalExamples
    from llmrec.eval.ranking import evaluate

    # user 0: window 2, 4, held-out 2 (second in the ranking); user 1: window 2, 4 with 4 masked as a
    # training target-behaviour item, held-out 3 (ranks after 2, then first by popularity)
    examples = EvalExamples(users=np.array([0, 1]), inputs={"item": np.array([[0, 2, 4], [0, 2, 4]]),
                                                            "behaviors": np.ones((2, 3), dtype=np.int64),
                                                            "scene": np.zeros((2, 3), dtype=np.int64)},
                            history=(np.array([0, 0, 1]), np.array([4])),
                            targets=(np.array([0, 1, 2]), np.array([2, 3])), target_behavior=1)
    res = evaluate(RecentItems(np.array([0, 5, 1, 9, 3, 7])), examples, EvalConfig(ks=[1, 5]), n_items=5)
    assert res.per_user["hr@1"].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(res.per_user["ndcg@5"], [1 / np.log2(3), 1 / np.log2(3)], rtol=1e-6)


def test_references_report_says_when_recent_means_file_order():
    from tests.conftest import benchmark_module

    markdown = benchmark_module("repeat_baseline").markdown
    report = {"dataset": "d", "test_users": 2, "held_out_seen_in_training": 0.5, "window": 50,
              "references": {"recent items, then popular": {"ndcg@20": 0.25}}, "models": {}, "not_run": []}
    untimed = markdown({**report, "has_timestamp": False}, ["ndcg@20"])
    assert "no timestamps" in untimed and "last 50 training events in file order" in untimed
    assert "| recent items, then popular (no training) | 0.2500 |" in untimed
    timed = markdown({**report, "has_timestamp": True}, ["ndcg@20"])
    assert "no timestamps" not in timed and "0.2500" in timed
    # a report from before the key existed (timed logs only) has no note either
    assert "no timestamps" not in markdown(report, ["ndcg@20"])

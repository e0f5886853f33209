"""Matrix factorisation: both losses by hand, it reads users not sequences, and a real run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmrec.backbones.registry import build_backbone
from tests.backbones.test_contract import tiny_batch
from tests.conftest import needs_ml100k


def tiny_mf(**kw):
    torch.manual_seed(0)
    return build_backbone({"name": "mf", "hidden": 8, **kw}, n_items=20, n_users=7, max_len=6)


def test_ce_loss_by_hand():
    model = tiny_mf()
    batch = tiny_batch()
    u = model.user_emb.weight[batch["users"]]
    terms = []
    for b in range(len(u)):
        logits = u[b] @ model.item_emb.weight.T
        logits[0] = float("-inf")
        for t in batch["targets"][b]:
            if t:
                terms.append(F.cross_entropy(logits[None], t[None]))
    assert torch.allclose(model.loss(batch), torch.stack(terms).mean(), atol=1e-6)


def test_bpr_loss_by_hand():
    model = tiny_mf(loss="bpr", n_negatives=2)
    batch = tiny_batch()
    torch.manual_seed(3)
    got = model.loss(batch)
    valid = batch["targets"] != 0
    torch.manual_seed(3)
    neg = torch.randint(1, 21, (int(valid.sum()), 2))
    rows = valid.nonzero()[:, 0]
    u = model.user_emb.weight[batch["users"][rows]]
    pos = (u * model.item_emb.weight[batch["targets"][valid]]).sum(-1)
    negs = (u[:, None] * model.item_emb.weight[neg]).sum(-1)
    assert torch.allclose(got, -F.logsigmoid(pos[:, None] - negs).mean(), atol=1e-6)


def test_scores_depend_on_the_user_only():
    model = tiny_mf().eval()
    batch = tiny_batch()
    shuffled = dict(batch, items=batch["items"].flip(1), behaviors=batch["behaviors"] * 0)
    assert torch.equal(model.score(batch), model.score(shuffled))
    other = dict(batch, users=batch["users"].roll(1))
    assert not torch.equal(model.score(batch), model.score(other))
    with pytest.raises(ValueError, match="n_users must be set"):
        build_backbone({"name": "mf"}, n_items=20, max_len=6)


@needs_ml100k
@pytest.mark.slow
def test_mf_trains_on_movielens(tmp_path):
    from llmrec.config import RunConfig, from_dict
    from llmrec.train.run import run

    cfg = from_dict(RunConfig, {
        "data": {"source": "ml-100k", "split": "loo", "cache_dir": str(tmp_path / "c")},
        "backbone": {"name": "mf", "hidden": 32},
        "train": {"epochs": 3, "out_dir": str(tmp_path / "r"), "progress": False, "lr": 0.01},
    })
    out = run(cfg)
    assert out["test"]["ndcg@10"] > 0.01  # random is ~0.003

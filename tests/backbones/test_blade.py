"""BLADE: behaviour-set encoding and richness weight by hand, every ablation switch, the evaluation
query, padding, expert-usage statistics, and a real MovieLens-100k run with derived behaviours."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmrec.backbones.registry import build_backbone
from tests.backbones.test_contract import tiny_batch
from tests.conftest import needs_ml100k


def tiny_blade(**kw):
    torch.manual_seed(0)
    section = {"name": "blade", "hidden": 8, "n_layers": 1, "n_heads": 2, "inner": 16, "dropout": 0.0,
               "n_experts": 3, **kw}
    return build_backbone(section, n_items=20, max_len=6, n_behaviors=3)


def test_behavior_set_encoding_is_a_softmax_over_the_members():
    model = tiny_blade()
    enc = model.sets
    with torch.no_grad():
        got = enc(torch.tensor([0b101, 0b010, 0]))
        scores = enc.score(enc.emb).squeeze(-1)  # (3,)
        w = torch.softmax(scores[[0, 2]], 0)
        assert torch.allclose(got[0], w[0] * enc.emb[0] + w[1] * enc.emb[2], atol=1e-6)
        assert torch.allclose(got[1], enc.emb[1], atol=1e-6)  # a single behaviour: its embedding
        assert torch.equal(got[2], torch.zeros(8))  # padding / empty set


def test_richness_weight_by_hand():
    batch = tiny_batch()
    on, off = tiny_blade(), tiny_blade(richness_weight=False)
    off.load_state_dict(on.state_dict())
    hidden = on.read(on.fused(batch["items"], batch["behaviors"]), batch["items"], batch["target_behaviors"])
    valid = batch["targets"] != 0
    logits = hidden[valid] @ on.item_emb.weight.T
    logits[:, 0] = float("-inf")
    ce = F.cross_entropy(logits, batch["targets"][valid], reduction="none")
    tb = batch["target_behaviors"][valid]
    w = torch.tensor([bin(int(b)).count("1") / 3 for b in tb])
    assert torch.allclose(on.loss(batch), (w * ce).sum() / w.sum(), atol=1e-6)
    assert torch.allclose(off.loss(batch), ce.mean(), atol=1e-6)


@pytest.mark.parametrize("early", ["sum", "concat", "gate", "none"])
@pytest.mark.parametrize("middle", [True, False])
def test_every_fusion_switch_trains(early, middle):
    if early == "none" and not middle:
        with pytest.raises(ValueError, match="at least one fusion branch"):
            tiny_blade(early_fusion=early, intermediate_fusion=middle)
        return
    model = tiny_blade(early_fusion=early, intermediate_fusion=middle)
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert ("early" in names) == (early != "none") and ("middle" in names) == middle
    loss = model.loss(tiny_batch())
    loss.backward()
    assert torch.isfinite(loss) and model.item_emb.weight.grad.abs().sum() > 0


def test_evaluation_query_is_the_fixed_target_behavior_and_padding_is_inert():
    model = tiny_blade().eval()
    batch = tiny_batch()
    with torch.no_grad():
        model.sets.emb.normal_()  # init-scale (0.02) set embeddings barely move the attention
        model.cross_q.weight.normal_()
        base = model.encode(batch)
        other_steps = dict(batch, target_behaviors=torch.full_like(batch["target_behaviors"], 0b110))
        assert torch.equal(model.encode(other_steps), base)  # the held-out step's set is never read
        other_query = dict(batch, target_behavior=torch.full_like(batch["target_behavior"], 0b010))
        assert not torch.allclose(model.encode(other_query), base)
        # left padding: row 0 starts with 3 padding steps; other padding values change nothing
        noisy = dict(batch, behaviors=batch["behaviors"].clone())
        noisy["behaviors"][0, :3] = 7
        assert torch.allclose(model.encode(noisy)[0], base[0], atol=1e-6)


def test_expert_usage_is_logged_per_epoch():
    model = tiny_blade()
    model.loss(tiny_batch())
    stats = model.extra_stats()
    assert len(stats) == 3 and sum(stats.values()) == pytest.approx(1.0, abs=1e-5)
    assert model.extra_stats() == {}  # reset after reading
    assert tiny_blade(n_experts=1).extra_stats() == {}


@needs_ml100k
@pytest.mark.slow
def test_blade_trains_on_movielens_with_derived_behaviors(tmp_path):
    from llmrec.config import RunConfig, from_dict
    from llmrec.train.run import run

    cfg = from_dict(RunConfig, {
        "data": {"source": "ml-100k", "split": "loo", "derive_behaviors": True, "cache_dir": str(tmp_path / "c")},
        "backbone": {"name": "blade", "hidden": 32, "n_layers": 1, "inner": 64},
        "train": {"epochs": 2, "out_dir": str(tmp_path / "r"), "progress": False},
    })
    out = run(cfg)
    assert any("derived" in d for d in out["derived"])
    assert out["test"]["ndcg@10"] > 0.01  # well above random (~0.003) after two epochs
    import json

    record = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert sum(v for k, v in record.items() if k.startswith("expert")) == pytest.approx(1.0, abs=1e-4)

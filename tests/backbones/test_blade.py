"""BLADE: behaviour-set encoding, richness weight, MoE and augmentations by hand, every ablation
switch, the evaluation query, padding, expert-usage statistics, a run on a written multi-behaviour
file and a real MovieLens-100k run with derived behaviours."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmrec.backbones import blade_aug as aug
from llmrec.backbones.blade import BehaviorGuidedMoE
from llmrec.backbones.blade_aug import (
    AUGMENTATIONS,
    augment_view,
    behavior_stats,
    nt_xent,
)
from llmrec.backbones.layers import from_bits, to_bits
from llmrec.backbones.registry import build_backbone
from llmrec.data.prepare import TEST, TRAIN
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
    on, off = tiny_blade(cl_weight=0.0), tiny_blade(richness_weight=False, cl_weight=0.0)
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


def test_expert_usage_and_contrastive_loss_are_logged_per_epoch():
    model = tiny_blade()
    model.loss(tiny_batch())
    stats = model.extra_stats()
    usage = {k: v for k, v in stats.items() if k.startswith("expert")}
    assert len(usage) == 3 and sum(usage.values()) == pytest.approx(1.0, abs=1e-5)
    assert stats["loss_cl"] > 0
    assert model.extra_stats() == {}  # reset after reading
    assert tiny_blade(n_experts=1, cl_weight=0.0).extra_stats() == {}


def test_moe_equals_the_gated_sum_of_its_experts():
    torch.manual_seed(1)
    moe = BehaviorGuidedMoE(hidden=8, inner=5, experts=3)
    torch.nn.init.normal_(moe.down_bias)
    x, sets = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    g = moe.gate(sets).softmax(-1)
    want = 0
    for e in range(3):
        rows = slice(5 * e, 5 * (e + 1))
        h = F.gelu(x @ moe.up.weight[rows].T + moe.up.bias[rows])
        want = want + g[..., e:e + 1] * (h @ moe.down.weight[:, rows].T + moe.down_bias[e])
    assert torch.allclose(moe(x, sets), want, atol=1e-5)


def test_behavior_statistics_by_hand():
    bits = to_bits(torch.tensor([0b011, 0b001, 0b101, 0b011]), 3)
    m, freq = behavior_stats(bits)
    # behaviour 0 is in all 4 steps, 1 in 2, 2 in 1: P(1|0) = 2/4, P(2|0) = 1/4, P(0|1) = 1, P(0|2) = 1
    assert torch.allclose(m, torch.tensor([[0, .5, .25], [1, 0, 0], [1, 0, 0]]))
    assert torch.allclose(freq, torch.tensor([1.0, 0.5, 0.25]))
    assert torch.equal(from_bits(bits), torch.tensor([0b011, 0b001, 0b101, 0b011]))


def test_cooccurrence_addition_adds_one_cooccurring_behaviour():
    torch.manual_seed(0)
    bits = to_bits(torch.tensor([0b001] * 200 + [0b010] * 10 + [0b111]), 3)
    m = torch.tensor([[0, .9, .1], [1, 0, 0], [1, 0, 0]])
    out = aug.cooccurrence_add(bits, m, ratio=1.0)
    added = out & ~bits
    assert torch.equal(out & bits, bits) and (added.sum(-1) <= 1).all()
    assert (added[:200].sum(-1) == 1).all() and added[:200, 1].float().mean() > 0.8  # p = b.M = (0, .9, .1)
    assert torch.equal(added[200:210, 0], torch.ones(10, dtype=torch.bool))  # {1}: only 0 co-occurs
    assert not added[210].any()  # nothing missing
    assert torch.equal(aug.cooccurrence_add(bits, m, ratio=0.0), bits)


def test_frequency_masking_drops_frequent_behaviours_and_never_empties_a_set():
    torch.manual_seed(0)
    bits = to_bits(torch.tensor([0b011] * 400 + [0b001]), 3)
    out = aug.frequency_mask(bits, torch.tensor([1.0, 0.0, 0.0]), ratio=1.0)
    assert torch.equal(out[:400], to_bits(torch.tensor([0b010] * 400), 3))  # frequency 1: always masked
    assert torch.equal(out[400], bits[400])  # masking would empty it: kept
    half = aug.frequency_mask(bits, torch.tensor([1.0, 0.0, 0.0]), ratio=0.5)[:400, 0].float().mean()
    assert 0.4 < half < 0.6  # rho: the share of steps touched


def test_auxiliary_flipping_never_touches_the_target_behaviour():
    torch.manual_seed(0)
    bits = to_bits(torch.tensor([0b001] * 300 + [0b011] * 300), 3)
    auxiliary = torch.tensor([False, True, True])
    out = aug.auxiliary_flip(bits, auxiliary, ratio=1.0)
    assert torch.equal(out[:, 0], bits[:, 0])
    assert ((out ^ bits).sum(-1) == 1).all()  # exactly one auxiliary bit flipped per step
    assert 0.4 < (out ^ bits)[:, 1].float().mean() < 0.6  # chosen uniformly among the auxiliaries


def test_augmented_view_keeps_items_and_padding():
    torch.manual_seed(0)
    batch = tiny_batch()
    real = batch["items"] != 0
    for methods in (["cooccurrence"], ["masking"], ["flipping"], list(AUGMENTATIONS)):
        view = augment_view(batch["behaviors"], real, batch["target_behavior"], 3, methods, ratio=1.0)
        assert (view[~real] == 0).all() and (view[real] > 0).all()
        assert not torch.equal(view, batch["behaviors"] * real)
    same = augment_view(batch["behaviors"], real, batch["target_behavior"], 3, list(AUGMENTATIONS), ratio=0.0)
    assert torch.equal(same, batch["behaviors"] * real)


def test_single_behaviour_steps_make_three_components_inert_and_fit_data_says_so(caplog):
    """RetailRocket's case (one behaviour per event): the warning's claim, checked on the model."""
    torch.manual_seed(0)
    batch = tiny_batch()
    single = torch.tensor([1, 2, 4])[torch.randint(3, batch["behaviors"].shape)]  # (B, L) singletons
    batch = {**batch, "behaviors": single, "target_behaviors": single.roll(-1, 1)}
    real = batch["items"] != 0
    for methods in (["cooccurrence"], ["masking"]):  # nothing co-occurs; masking would empty every set
        view = augment_view(batch["behaviors"], real, batch["target_behavior"], 3, methods, ratio=1.0)
        assert torch.equal(view, batch["behaviors"] * real)
    flipped = augment_view(batch["behaviors"], real, batch["target_behavior"], 3, ["flipping"], ratio=1.0)
    assert not torch.equal(flipped, batch["behaviors"] * real)
    on, off = tiny_blade(cl_weight=0.0), tiny_blade(richness_weight=False, cl_weight=0.0)
    off.load_state_dict(on.state_dict())
    assert torch.allclose(on.loss(batch), off.loss(batch), atol=1e-6)  # a constant, normalised weight

    model = tiny_blade()
    assert model.inert_on([1, 2, 4, 1]) == ["richness_weight", "cooccurrence", "masking"]
    assert model.inert_on([1, 0b011]) == []  # one step with two behaviours: all act
    assert tiny_blade(cl_weight=0.0).inert_on([1, 2]) == ["richness_weight"]  # no views are built
    assert tiny_blade(richness_weight=False, augmentations=["flipping"]).inert_on([1, 2]) == []
    data = SimpleNamespace(name="toy", behaviors=np.array([1, 2, 4, 0b011]), split=np.array([TRAIN] * 3 + [TEST]))
    with caplog.at_level(logging.WARNING, logger="llmrec"):
        model.fit_data(data)  # the only multi-behaviour row is a test row: not counted
    assert "BLADE on toy: every training step has a single behaviour, so richness_weight, cooccurrence, " \
           "masking change nothing" in caplog.text


def test_nt_xent_by_hand():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    z = F.normalize(torch.cat([a, b]), dim=-1)
    sim = (z @ z.T / 0.5).exp()
    want = 0
    for i in range(6):
        pos = (i + 3) % 6
        want -= torch.log(sim[i, pos] / (sim[i].sum() - sim[i, i]))
    assert torch.allclose(nt_xent(a, b, 0.5), want / 6, atol=1e-5)


def test_contrastive_term_is_added_with_its_weight():
    batch = tiny_batch()
    model = tiny_blade(cl_weight=0.3)
    base = tiny_blade(cl_weight=0.0)
    base.load_state_dict(model.state_dict())
    torch.manual_seed(5)
    total = model.loss(batch)
    torch.manual_seed(5)
    rec = base.loss(batch)
    torch.manual_seed(5)
    cl = model.contrastive_loss(batch)
    assert torch.allclose(total, rec + 0.3 * cl, atol=1e-5) and cl > 0
    off = tiny_blade(augmentations=[])  # no augmentation: no views, no contrastive term
    off.load_state_dict(model.state_dict())
    assert torch.allclose(off.loss(batch), rec, atol=1e-6) and "loss_cl" not in off.extra_stats()
    with pytest.raises(ValueError, match="unknown \\['crop'\\]"):
        tiny_blade(augmentations=["crop"])


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

"""The sampled softmax shared by SASRec and BLADE: exact where it must be, hand-checked where sampled."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmrec.backbones.layers import item_softmax_ce
from llmrec.backbones.registry import build_backbone
from tests.backbones.test_contract import L, N_ITEMS, N_USERS, tiny_batch


def test_full_softmax_when_not_sampling_or_sampling_everything():
    g = torch.Generator().manual_seed(0)
    h, items = torch.randn(5, 4, generator=g), torch.randn(N_ITEMS + 1, 4, generator=g)
    t = torch.tensor([1, 3, 3, 7, N_ITEMS])
    logits = h @ items.T
    logits[:, 0] = float("-inf")
    full = F.cross_entropy(logits, t, reduction="none")
    assert torch.allclose(item_softmax_ce(h, items, t, 0), full)
    assert torch.allclose(item_softmax_ce(h, items, t, N_ITEMS), full)  # K >= N: no point sampling


def test_sampled_logits_by_hand():
    g = torch.Generator().manual_seed(1)
    h, items = torch.randn(3, 4, generator=g), torch.randn(N_ITEMS + 1, 4, generator=g)
    t = torch.tensor([2, 5, 9])
    torch.manual_seed(7)
    got = item_softmax_ce(h, items, t, 4)
    torch.manual_seed(7)
    neg = torch.randint(1, N_ITEMS + 1, (4,))  # the same draw
    for r in range(3):
        others = [float(h[r] @ items[j]) + math.log(N_ITEMS / 4) for j in neg.tolist() if j != t[r]]
        logits = torch.tensor([float(h[r] @ items[t[r]])] + others)  # a draw equal to the target is dropped
        assert got[r].item() == pytest.approx(float(-(logits[0] - logits.logsumexp(0))), rel=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "blade", "mf"])
def test_backbones_train_with_the_sampled_loss(name):
    section = {"name": name, "hidden": 16, "loss": "sampled_ce", "n_negatives": 8,
               **({} if name == "mf" else {"n_layers": 1, "n_heads": 2, "inner": 32, "dropout": 0.0})}
    if name == "blade":
        section["cl_weight"] = 0.0
    torch.manual_seed(0)
    model = build_backbone(section, n_items=N_ITEMS, n_users=N_USERS, max_len=L, n_behaviors=3, n_scenes=4)
    loss = model.loss(tiny_batch())
    loss.backward()
    assert torch.isfinite(loss) and model.item_emb.weight.grad.abs().sum() > 0


def test_mclmr_samples_as_its_base_and_refuses_a_pairwise_base():
    kw = dict(n_items=N_ITEMS, n_users=N_USERS, max_len=L, n_behaviors=3, n_scenes=4)
    model = build_backbone({"name": "mf", "hidden": 8, "loss": "sampled_ce", "n_negatives": 5,
                            "plugins": {"mclmr": {}}}, **kw)
    assert model.config.n_sampled == 5
    with pytest.raises(ValueError, match="base's loss must be ce or sampled_ce, got 'bpr'"):
        build_backbone({"name": "mf", "hidden": 8, "loss": "bpr", "plugins": {"mclmr": {}}}, **kw)


@pytest.mark.parametrize("base", ["sasrec", "mf"])
def test_mclmr_sampled_logits_are_the_full_logits_at_those_items(base):
    from llmrec.backbones.layers import draw_negatives

    section = {"name": base, "hidden": 16, "plugins": {"mclmr": {"n_sampled": 6}},
               **({"n_layers": 1, "n_heads": 2, "inner": 32, "dropout": 0.0} if base == "sasrec" else {})}
    torch.manual_seed(0)
    model = build_backbone(section, n_items=N_ITEMS, n_users=N_USERS, max_len=L, n_behaviors=3, n_scenes=4)
    with torch.no_grad():  # non-trivial popularity and conformity, so the backdoor term is checked too
        model.log_pop.copy_(torch.rand(N_ITEMS + 1))
        model.conformity.copy_(torch.tensor([0.3, -0.2, 0.5]))
        model.user_stratum.copy_(torch.arange(N_USERS) % 3)
    batch = tiny_batch()
    valid = batch["targets"] != 0
    h = model.base.train_states(batch)[valid]
    t, users = batch["targets"][valid], batch["users"][valid.nonzero()[:, 0]]
    neg = draw_negatives(N_ITEMS, 6, h.device)
    pos, other, w_t, _ = model.sampled_logits(h, t, users, neg)
    full, w, _ = model._deconfounded(h)
    full = full + model.confounder_term(users)
    assert torch.allclose(pos, full.gather(1, t.unsqueeze(1)).squeeze(1), atol=1e-5)
    assert torch.allclose(other, full[:, neg], atol=1e-5)
    assert torch.allclose(w_t, w[:, torch.arange(len(t)), t], atol=1e-6)
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.experts.grad.abs().sum() > 0

"""The sampled softmax shared by SASRec and BLADE: exact where it must be, hand-checked where sampled."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import numpy as np

from llmrec.backbones.registry import build_backbone
from llmrec.backbones.sampling import NegativeSampler, fit_samplers, item_softmax_ce, sampled_ce
from tests.backbones.test_contract import L, N_ITEMS, N_USERS, tiny_batch


def full_ce(h, items, t):
    logits = h @ items.T
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, t, reduction="none")


def test_full_softmax_when_not_sampling_or_sampling_everything():
    g = torch.Generator().manual_seed(0)
    h, items = torch.randn(5, 4, generator=g), torch.randn(N_ITEMS + 1, 4, generator=g)
    t = torch.tensor([1, 3, 3, 7, N_ITEMS])
    full = full_ce(h, items, t)
    assert torch.allclose(item_softmax_ce(h, items, t), full)
    assert torch.allclose(item_softmax_ce(h, items, t, NegativeSampler(N_ITEMS, 0)), full)
    assert torch.allclose(item_softmax_ce(h, items, t, NegativeSampler(N_ITEMS, N_ITEMS)), full)  # K >= N


def test_uniform_sampled_logits_by_hand():
    g = torch.Generator().manual_seed(1)
    h, items = torch.randn(3, 4, generator=g), torch.randn(N_ITEMS + 1, 4, generator=g)
    t = torch.tensor([2, 5, 9])
    torch.manual_seed(7)
    got = item_softmax_ce(h, items, t, NegativeSampler(N_ITEMS, 4))
    torch.manual_seed(7)
    neg = torch.randint(1, N_ITEMS + 1, (4,))  # the same draw
    for r in range(3):
        others = [float(h[r] @ items[j]) + math.log(N_ITEMS / 4) for j in neg.tolist() if j != t[r]]
        logits = torch.tensor([float(h[r] @ items[t[r]])] + others)  # a draw equal to the target is dropped
        assert got[r].item() == pytest.approx(float(-(logits[0] - logits.logsumexp(0))), rel=1e-5)


def test_popularity_proposal_by_hand():
    counts = np.array([0, 9, 0, 3, 1, 0])  # padding, then 5 items; +1 smoothing -> 10, 1, 4, 2, 1
    s = NegativeSampler(5, 3, "popularity", alpha=1.0)
    s.fit(counts)
    q = np.array([10, 1, 4, 2, 1]) / 18
    assert np.allclose(s.log_q[1:].exp().numpy(), q, atol=1e-6) and s.log_q[0] == float("-inf")
    torch.manual_seed(0)
    neg, corr = s.draw("cpu")
    assert neg.min() >= 1 and neg.max() <= 5  # padding is never drawn
    assert torch.allclose(corr, torch.tensor(-np.log(3 * q[neg.numpy() - 1]), dtype=torch.float32), atol=1e-5)
    big = NegativeSampler(5, 4, "popularity", alpha=0.5)
    big.fit(counts)
    big.k = 60_000  # many draws: the empirical frequencies follow (c + 1) ^ alpha
    freq = np.bincount(big.draw("cpu")[0].numpy(), minlength=6)[1:] / 60_000
    w = np.sqrt([10, 1, 4, 2, 1])
    assert np.allclose(freq, w / w.sum(), atol=0.01)


def test_an_unfitted_popularity_sampler_draws_uniformly_and_a_wrong_length_is_refused():
    s = NegativeSampler(5, 2, "popularity")
    neg, corr = s.draw("cpu")
    assert torch.allclose(corr, torch.full((2,), math.log(5 / 2)))
    with pytest.raises(ValueError, match="length 4, expected n_items \\+ 1 = 6"):
        s.fit(np.zeros(4))
    with pytest.raises(ValueError, match="sampler must be 'uniform' or 'popularity', got 'pop'"):
        NegativeSampler(5, 2, "pop")


@pytest.mark.parametrize("proposal", ["uniform", "popularity"])
def test_with_many_draws_the_corrected_loss_estimates_the_full_one(proposal):
    # sum_j exp(l_j - log(K q_j)) over K draws estimates the sum over the non-target items, so the
    # sampled CE converges to the full CE; a wrong sign or a missing correction would not.
    g = torch.Generator().manual_seed(3)
    n = 12
    h, items = torch.randn(4, 6, generator=g), torch.randn(n + 1, 6, generator=g)
    t = torch.tensor([1, 4, 4, 11])
    s = NegativeSampler(n, 8, proposal)
    s.fit(np.concatenate([[0], np.arange(n) ** 2]))  # a steep proposal: most items rarely drawn
    s.k = 200_000
    torch.manual_seed(0)
    neg, corr = s.draw("cpu")
    got = sampled_ce((h * items[t]).sum(-1), h @ items[neg].T, t, neg, corr)
    assert torch.allclose(got, full_ce(h, items, t), rtol=0.03, atol=0.01)


def test_fit_samplers_reaches_the_plugin_and_mclmr_inherits_the_proposal():
    kw = dict(n_items=N_ITEMS, n_users=N_USERS, max_len=L, n_behaviors=3, n_scenes=4)
    model = build_backbone({"name": "mf", "hidden": 8, "loss": "sampled_ce", "n_negatives": 5,
                            "sampler": "popularity", "sampler_alpha": 0.5, "plugins": {"mclmr": {}}}, **kw)
    assert (model.config.n_sampled, model.config.sampler, model.config.sampler_alpha) == (5, "popularity", 0.5)
    counts = np.arange(N_ITEMS + 1)
    fit_samplers(model, counts)
    assert model.sampler.fitted and model.base.sampler.fitted
    assert torch.allclose(model.sampler.log_q, model.base.sampler.log_q)
    assert "sampler.log_q" not in model.state_dict()  # refitted at setup; checkpoints unchanged


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
    neg, _ = model.sampler.draw(h.device)
    pos, other, w_t, _ = model.sampled_logits(h, t, users, neg)
    full, w, _, _ = model._deconfounded(h)
    full = full + model.confounder_term(users)
    assert torch.allclose(pos, full.gather(1, t.unsqueeze(1)).squeeze(1), atol=1e-5)
    assert torch.allclose(other, full[:, neg], atol=1e-5)
    assert torch.allclose(w_t, w[:, torch.arange(len(t)), t], atol=1e-6)
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.experts.grad.abs().sum() > 0


def test_setup_fits_the_proposal_to_the_training_split_only(tiny_cfg):
    from llmrec.config import RunConfig, from_dict
    from llmrec.data.prepare import TRAIN
    from llmrec.train.run import setup

    cfg = from_dict(RunConfig, {"data": {**vars(tiny_cfg)},
                                "backbone": {"name": "sasrec", "hidden": 8, "n_layers": 1, "inner": 16,
                                             "loss": "sampled_ce", "n_negatives": 5, "sampler": "popularity"}})
    data, *_, model = setup(cfg)
    counts = np.bincount(data.item[data.split == TRAIN], minlength=data.n_items + 1)
    assert counts.sum() < len(data.item)  # valid and test events exist and are not counted
    w = counts[1:] + 1.0
    assert np.allclose(model.sampler.log_q[1:].exp().numpy(), w / w.sum(), atol=1e-6)

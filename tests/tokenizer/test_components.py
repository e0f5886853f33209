"""Graph, quantiser, semantic losses and edge split, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmrec.tokenizer.config import TokenizerModelConfig
from llmrec.tokenizer.edges import rank_edges, split_edges
from llmrec.tokenizer.graph import LightGCN, normalized_adjacency
from llmrec.tokenizer.model import codebook_size
from llmrec.tokenizer.semantic import MicroReconstructor, info_nce, random_mask
from llmrec.tokenizer.vq import VectorQuantizer, codes_stats


def test_adjacency_is_symmetric_normalised():
    # users 0,1; items 1,2 -> nodes 2,3. Degrees: u0=2, u1=1, i1=2, i2=1
    adj = normalized_adjacency(np.array([0, 0, 1]), np.array([1, 2, 1]), 2, 2).to_dense()
    expect = torch.zeros(4, 4)
    expect[0, 2] = expect[2, 0] = 1 / math.sqrt(2 * 2)
    expect[0, 3] = expect[3, 0] = 1 / math.sqrt(2 * 1)
    expect[1, 2] = expect[2, 1] = 1 / math.sqrt(1 * 2)
    torch.testing.assert_close(adj, expect)


def test_lightgcn_is_the_mean_over_layers_and_backprops():
    adj = normalized_adjacency(np.array([0, 0, 1]), np.array([1, 2, 1]), 2, 2)
    gcn = LightGCN(2, 2, 3, n_layers=2)
    users, items = gcn(adj)
    x0 = gcn.embedding.weight
    dense = adj.to_dense()
    mean = (x0 + dense @ x0 + dense @ dense @ x0) / 3
    torch.testing.assert_close(users, mean[:2])
    torch.testing.assert_close(items[1:], mean[2:])
    assert torch.all(items[0] == 0)
    (users.sum() + items.sum()).backward()
    ref = torch.autograd.grad((((x0 + dense @ x0 + dense @ dense @ x0) / 3).sum()), x0)[0]
    torch.testing.assert_close(gcn.embedding.weight.grad, ref)


def test_vq_picks_highest_cosine_and_passes_gradients_straight_through():
    vq = VectorQuantizer(2, 4, 3, beta=0.5)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    z = torch.tensor([[2.0, 0.5], [-0.1, 3.0], [-5.0, 1.0]], requires_grad=True)
    tok, codes, loss = vq(z)
    assert codes.tolist() == [0, 1, 2]
    e = torch.nn.functional.normalize(z.detach(), dim=-1)
    q = vq.codewords()[codes].detach()
    assert float(loss.detach()) == pytest.approx(1.5 * float(((q - e) ** 2).mean()), rel=1e-5)
    torch.testing.assert_close(tok.detach(), q)
    tok.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # straight-through
    assert vq.usage.tolist() == [1, 1, 1]
    # the lifted tokens of quantised inputs are exactly the lifted codewords
    torch.testing.assert_close(vq.text(tok.detach()), vq.text_codewords()[codes].detach())
    assert vq.text_codewords().shape == (3, 4)


def test_vq_without_quantisation_returns_unit_vectors_and_no_codes():
    vq = VectorQuantizer(4, 3, 5, quantize=False)
    tok, codes, loss = vq(torch.randn(6, 4))
    assert codes is None and float(loss) == 0
    torch.testing.assert_close(tok.norm(dim=-1), torch.ones(6))


def test_reseed_replaces_only_dead_codes_and_stats_are_exact():
    vq = VectorQuantizer(2, 2, 4)
    vq.usage.copy_(torch.tensor([3.0, 0.0, 1.0, 0.0]))
    before = vq.codebook.detach().clone()
    pool = torch.nn.functional.normalize(torch.randn(10, 2), dim=-1)  # already unit: reseed normalises
    assert vq.reseed(pool, torch.Generator().manual_seed(0)) == 2
    after = vq.codebook.detach()
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])
    assert all(any(torch.allclose(after[k], p) for p in pool) for k in (1, 3))
    stats = vq.usage_stats()  # p = (3/4, 1/4)
    assert stats["usage"] == 0.5
    assert stats["perplexity"] == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    final = codes_stats(torch.tensor([0, 0, 1, 1]), 8)
    assert final["usage"] == 0.25 and final["perplexity"] == pytest.approx(2.0)


def test_codebooks_shrink_for_small_entity_counts():
    cfg = TokenizerModelConfig(codebook_size=512, min_entities_per_code=8)
    assert codebook_size(cfg, 943, 1) == 117
    assert codebook_size(cfg, 943, 5) == 512
    assert codebook_size(cfg, 100_000, 1) == 512


def test_random_mask_masks_a_share_of_present_slots_only():
    present = torch.tensor([[True] * 5, [True, True, False, False, False], [True, False, False, False, False]])
    mask = random_mask(present, 0.4, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [2, 1, 1]
    assert not (mask & ~present).any()
    masks = {tuple(random_mask(present, 0.4, torch.Generator().manual_seed(s))[0].tolist()) for s in range(10)}
    assert len(masks) > 1  # fresh masks


def test_info_nce_is_low_for_aligned_pairs_and_log_b_for_uninformative():
    eye = torch.eye(8)
    assert float(info_nce(eye, eye, 0.05)) < 1e-3
    assert float(info_nce(torch.ones(8, 8), eye, 0.2)) == pytest.approx(math.log(8), rel=1e-4)


def test_micro_reconstruction_loss_only_counts_masked_slots():
    torch.manual_seed(0)
    rec = MicroReconstructor(8, n_heads=2)
    phrases = torch.nn.functional.normalize(torch.randn(3, 4, 8), dim=-1)
    present = torch.ones(3, 4, dtype=torch.bool)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[:, 0] = True
    tokens = torch.randn(3, 6, 8)
    loss = rec(phrases, present, tokens, mask)
    changed = phrases.clone()
    changed[:, 1:] = torch.nn.functional.normalize(torch.randn(3, 3, 8), dim=-1)  # unmasked slots only
    assert torch.isfinite(loss)
    assert float(loss.detach()) != float(rec(changed, present, tokens, mask).detach())  # context matters
    loss.backward()
    assert rec.mask_token.grad is not None


def test_edge_split_is_disjoint_and_independent_of_the_cold_share():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 2000), rng.integers(1, 80, 2000)
    a = split_edges(users, items, 50, valid_ratio=0.1, test_ratio=0.2, seed=3)
    b = split_edges(users, items, 50, valid_ratio=0.1, test_ratio=0.2, holdout_users=0.1, seed=3)
    n = len(np.unique(np.stack([users, items], 1), axis=0))
    assert len(a.train) + len(a.valid) + len(a.test) == n and len(a.cold) == 0
    keys = [set(map(tuple, x)) for x in (a.train, a.valid, a.test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert len(a.test) == round(0.2 * n)
    assert len(b.cold_users) == 5 and not np.isin(b.train[:, 0], b.cold_users).any()
    warm_test = a.test[~np.isin(a.test[:, 0], b.cold_users)]
    np.testing.assert_array_equal(warm_test, b.test)  # same targets for the models compared
    cold_all = np.concatenate([b.cold, b.cold_test])
    assert set(map(tuple, cold_all)) == set(map(tuple, np.concatenate([a.train, a.valid, a.test])[
        np.isin(np.concatenate([a.train, a.valid, a.test])[:, 0], b.cold_users)]))


def test_rank_edges_masks_known_edges_and_matches_hand_values():
    # user 0: scores over items 0..4; item 4 is known (masked), targets are items 2 and 3
    scores = torch.tensor([[9.0, 1.0, 3.0, 0.5, 5.0]])
    metrics, per_user, users = rank_edges(lambda u: scores, np.array([[0, 2], [0, 3]]), [np.array([[0, 4]])],
                                          4, ks=[1, 2])
    # ranking after masks: item 2 (3.0), item 1 (1.0), item 3 (0.5)
    assert metrics["hr@1"] == 1.0
    assert metrics["ndcg@2"] == pytest.approx(1.0 / (1 + 1 / math.log2(3)))
    assert metrics["recall@2"] == 0.5 and users.tolist() == [0]

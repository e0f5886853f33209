"""IBIM (ComiRec-SA): interest extraction, causal prefixes, target-aware selection by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmrec.backbones.registry import build_backbone


def tiny_ibim(**kw):
    torch.manual_seed(0)
    section = {"name": "ibim", "hidden": 8, "n_interests": 3, "attn_hidden": 16, "dropout": 0.0, **kw}
    return build_backbone(section, n_items=12, max_len=5)


def test_interests_are_attention_mixes_of_the_item_states():
    model = tiny_ibim().eval()
    items = torch.tensor([[0, 0, 4, 7, 2]])
    with torch.no_grad():
        v = model.interests(items)  # (1, K, D)
        pos = torch.arange(5)
        h = model.item_emb(items) + model.pos_emb(pos)  # (1, L, D)
        logits = model.w2(torch.tanh(model.w1(h)))[0, 2:]  # real positions only, (3, K)
        att = logits.softmax(dim=0)  # over positions
        expected = att.T @ h[0, 2:]  # (K, D)
    assert v.shape == (1, 3, 8)
    assert torch.allclose(v[0], expected, atol=1e-6)
    assert not torch.allclose(v[0, 0], v[0, 1])  # distinct interests


def test_every_position_equals_the_prefix_alone_and_padding_is_inert():
    for layers in (0, 1):
        model = tiny_ibim(n_layers=layers).eval()
        items = torch.tensor([[0, 3, 9, 1, 6]])
        with torch.no_grad():
            per_pos = model.interests(items, every_position=True)  # (1, L, K, D)
            for t in range(1, 5):
                alone = model.interests(items[:, :t + 1])
                assert torch.allclose(per_pos[0, t], alone[0], atol=1e-5), (layers, t)
            # the last position of the all-position pass is the encoding used for scoring
            assert torch.allclose(per_pos[:, -1], model.encode({"items": items}), atol=1e-5)


def test_training_picks_the_interest_closest_to_each_target():
    model = tiny_ibim()
    items = torch.tensor([[0, 2, 5, 7, 3], [1, 4, 4, 8, 9]])
    targets = torch.tensor([[0, 5, 7, 3, 11], [4, 4, 8, 9, 10]])
    loss, user = model.loss_and_user({"items": items, "targets": targets})
    per_pos = model.interests(items, every_position=True)
    E = model.item_emb.weight
    total, n = 0.0, 0
    for b in range(2):
        for t in range(5):
            if targets[b, t] == 0:
                continue
            v = per_pos[b, t]  # (K, D)
            k = int((v @ E[targets[b, t]]).argmax())
            logits = v[k] @ E.T
            logits[0] = float("-inf")
            total = total + F.cross_entropy(logits[None], targets[b, t][None])
            n += 1
    assert torch.allclose(loss, total / n, atol=1e-5)
    assert user.shape == (2, 3, 8) and torch.allclose(user, per_pos[:, -1])


def test_scores_take_the_max_over_interests():
    model = tiny_ibim().eval()
    batch = {"items": torch.tensor([[0, 2, 5, 7, 3]])}
    with torch.no_grad():
        v = model.encode(batch)[0]  # (K, D)
        by_hand = (v @ model.item_emb.weight.T).max(dim=0).values
        scores = model.score(batch)[0]
    assert torch.allclose(scores[1:], by_hand[1:], atol=1e-6) and torch.isinf(scores[0])


def squash(z):
    n2 = float(z @ z)
    return z * (n2 / (1 + n2)) / (n2 ** 0.5 + 1e-12)


def test_dynamic_routing_matches_a_loop_over_items_and_interests():
    model = tiny_ibim(extractor="dr", routing_iters=3).eval()
    items = torch.tensor([[0, 0, 4, 7, 2]])
    with torch.no_grad():
        v = model.interests(items)[0]  # (K, D)
        h = model.item_emb(items[0]) + model.pos_emb(torch.arange(5))  # (L, D)
        K, D = 3, 8
        W = model.maps.weight.view(K, D, D)
        real = [2, 3, 4]
        u = {(s, k): W[k] @ h[s] for s in real for k in range(K)}
        b = {(s, k): 0.0 for s in real for k in range(K)}
        for it in range(3):
            caps = []
            for k in range(K):
                z = torch.zeros(D)
                for s in real:
                    w = torch.softmax(torch.tensor([b[s, j] for j in range(K)]), 0)[k]
                    z = z + w * u[s, k]
                caps.append(squash(z))
            for s in real:
                for k in range(K):
                    b[s, k] += float(caps[k] @ u[s, k])
        expected = torch.stack(caps)
    assert torch.allclose(v, expected, atol=1e-5)
    assert (v.norm(dim=-1) < 1).all()  # squashed capsules


def test_dynamic_routing_trains_and_its_prefixes_agree():
    model = tiny_ibim(extractor="dr")
    items = torch.tensor([[0, 2, 5, 7, 3], [1, 4, 4, 8, 9]])
    targets = torch.tensor([[0, 5, 7, 3, 11], [4, 4, 8, 9, 10]])
    loss, user = model.loss_and_user({"items": items, "targets": targets})
    loss.backward()
    assert torch.isfinite(loss) and model.maps.weight.grad.abs().sum() > 0
    assert model.item_emb.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        per_pos = model.interests(items, every_position=True)
        for t in range(1, 5):
            assert torch.allclose(per_pos[:, t], model.interests(items[:, :t + 1]), atol=1e-5)
        scores = model.score({"items": items})
    assert scores.shape == (2, 13) and torch.isfinite(scores[:, 1:]).all()

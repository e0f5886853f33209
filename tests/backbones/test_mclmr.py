"""MCLMR plug-in: a synthetic popularity confounder the adjusted scores see through and the naive
ones do not; contract on every supported backbone; switches; statistics from the training split
only; the intervention by hand; checkpoints rebuild the plug-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from llmrec.backbones.plugins.mclmr import MCLMR, quantile_strata
from llmrec.backbones.registry import build_backbone
from llmrec.backbones.registry import backbone_config
from llmrec.config import RunConfig, from_dict
from llmrec.errors import ConfigError
from tests.backbones.test_contract import N_ITEMS, N_USERS, B, tiny_batch

SUPPORTED = ["sasrec", "mf"]
EPOCHS = 30


def wearing(name: str, **plugin):
    torch.manual_seed(0)
    small = {"hidden": 16, "dropout": 0.0} | ({"n_layers": 1, "inner": 32} if name == "sasrec" else {})
    if name == "mf":
        small.pop("dropout")
    return build_backbone({"name": name, **small, "plugins": {"mclmr": plugin}},
                          n_items=N_ITEMS, n_users=N_USERS, max_len=6, n_behaviors=3)


@pytest.mark.parametrize("name", SUPPORTED)
def test_contract_with_the_plugin(name):
    model = wearing(name)
    assert isinstance(model, MCLMR)
    batch = tiny_batch()
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.base.item_embeddings().grad.abs().sum() > 0
    assert model.experts.grad.abs().sum() > 0 and model.route_item.weight.grad.abs().sum() > 0
    stats = model.extra_stats()
    assert stats["router0"] + stats["router1"] == pytest.approx(1.0, abs=1e-5)
    model.eval()
    with torch.no_grad():
        full = model.score(batch)
        assert full.shape == (B, N_ITEMS + 1) and torch.isinf(full[:, 0]).all()
        cand = torch.randint(1, N_ITEMS + 1, (B, 5))
        assert torch.allclose(model.score(batch, cand), full.gather(1, cand))
        rebuilt = build_backbone(model.section())  # what load_model does with a checkpoint
        rebuilt.load_state_dict(model.state_dict())
        assert torch.equal(rebuilt.eval().score(batch), full)


@pytest.mark.parametrize("name", SUPPORTED)
def test_all_switches_off_is_the_base_loss(name):
    off = wearing(name, backdoor=False, aggregation=False, aux_weight=0.0, cl_weight=0.0)
    batch = tiny_batch()
    batch["target_behaviors"] = batch["target_behaviors"] | 1  # every step carries the target behaviour
    assert torch.allclose(off.loss(batch), off.base.loss(batch), atol=1e-6)
    assert not any(n.startswith(("experts", "route")) for n, _ in off.named_parameters())


@pytest.mark.parametrize("plugin", [{}, {"backdoor": False}, {"aggregation": False, "cl_weight": 0.0}])
def test_mf_per_row_scores_equal_the_per_target_path(plugin, monkeypatch):
    # MF's positions share the row's state, so the full path scores each row once; it must give the
    # per-target path's loss and gradients (what every other base runs).
    model = wearing("mf", **plugin)
    with torch.no_grad():  # non-trivial popularity and conformity, so the backdoor term is checked too
        model.log_pop.copy_(torch.rand(N_ITEMS + 1))
        model.conformity.copy_(torch.tensor([0.3, -0.2, 0.5]))
        model.user_stratum.copy_(torch.arange(N_USERS) % 3)
    batch = tiny_batch()
    results = []
    for order_free in (True, False):
        monkeypatch.setattr(type(model.base), "order_free", order_free)
        model.zero_grad()
        torch.manual_seed(1)  # the contrastive anchors' subsample draws alike
        loss = model.loss(batch)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (row_loss, row_grads), (t_loss, t_grads) = results
    assert torch.allclose(row_loss, t_loss, atol=1e-5)
    assert row_grads.keys() == t_grads.keys()
    assert all(torch.allclose(row_grads[n], t_grads[n], atol=1e-5) for n in row_grads)


@pytest.mark.parametrize("name", SUPPORTED)
def test_loss_by_hand_with_the_auxiliary_experts(name):
    # Target CE of the deconfounded scores plus aux_weight x each expert's CE on its behaviour's
    # targets, written out from the parameters (the model reuses the aggregation's per-expert scores).
    model = wearing(name, cl_weight=0.0, aux_weight=0.7)
    model.train(False)  # dropout off, so the hand computation sees the same states
    with torch.no_grad():
        model.log_pop.copy_(torch.rand(N_ITEMS + 1))
        model.conformity.copy_(torch.tensor([0.3, -0.2, 0.5]))
        model.user_stratum.copy_(torch.arange(N_USERS) % 3)
        model.experts.copy_(torch.randn_like(model.experts))  # experts start near identity: tell them apart
    batch = tiny_batch()
    with torch.no_grad():
        valid = batch["targets"] != 0
        h = model.base.train_states(batch)[valid]  # (T, D)
        t, users = batch["targets"][valid], batch["users"][valid.nonzero()[:, 0]]
        items = model.item_embeddings()
        hk = torch.einsum("td,kde->tke", h, model.experts)  # (T, K, D)
        w = (model.route_user(h).unsqueeze(1) + model.route_item(items).unsqueeze(0)).softmax(-1)  # (T, N+1, K)
        per_expert = torch.einsum("tkd,nd->tnk", hk, items)
        conf = model.conformity[model.user_stratum[users]].unsqueeze(1) * model.log_pop.unsqueeze(0)

        def ce(logits, rows):
            logits = logits.clone()
            logits[:, 0] = float("-inf")
            return torch.nn.functional.cross_entropy(logits[rows], t[rows])

        bits = batch["target_behaviors"][valid]
        expected = ce(h @ items.T + (w * per_expert).sum(-1) + conf, bits & 1 != 0)
        for k, bit in enumerate((2, 4)):  # behaviours 1 and 2 are the auxiliary ones (target = 0)
            expected = expected + 0.7 * ce(hk[:, k] @ items.T + conf, bits & bit != 0)
        assert torch.allclose(model.loss(batch), expected, atol=1e-5)


def test_unsupported_backbones_and_bad_sections_are_named():
    with pytest.raises(ValueError, match="needs a backbone with train_states.*IBIM"):
        build_backbone({"name": "ibim", "plugins": {"mclmr": {}}}, n_items=20, n_users=7, max_len=6, n_behaviors=3)
    with pytest.raises(ValueError, match="aggregation needs auxiliary behaviours"):
        build_backbone({"name": "mf", "plugins": {"mclmr": {}}}, n_items=20, n_users=7, max_len=6, n_behaviors=1)
    with pytest.raises(ConfigError, match="unknown plug-in 'causal'"):
        backbone_config({"name": "sasrec", "plugins": {"causal": {}}})
    with pytest.raises(ConfigError, match="unknown config key 'backbone.plugins.mclmr.strata'"):
        backbone_config({"name": "sasrec", "plugins": {"mclmr": {"strata": 3}}})


def test_do_probability_by_hand_and_ranking_is_the_intervention():
    model = wearing("mf", aggregation=False, cl_weight=0.0).eval()
    with torch.no_grad():
        model.conformity.copy_(torch.tensor([0.5, -1.0, 2.0]))
        model.user_stratum.copy_(torch.arange(N_USERS) % 3)
        model.stratum_prior.copy_(torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2]))
        model.stratum_log_pop.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))
        batch = tiny_batch()
        got = model.do_probability(batch)
        s = model.base.encode(batch) @ model.base.item_embeddings().T
        u, i = 2, 7
        c = [0.5, -1.0, 2.0][u % 3]
        want = sum(p * torch.sigmoid(s[u, i] + c * m) for p, m in zip([0.1, 0.2, 0.3, 0.2, 0.2], range(5)))
        assert got[u, i] == pytest.approx(float(want), rel=1e-5)
        # the intervened probability is monotone in the score: same ranking as score()
        assert torch.equal(got[:, 1:].argsort(-1), model.score(batch)[:, 1:].argsort(-1))


def test_quantile_strata():
    assert quantile_strata(np.array([5, 1, 3, 9, 7, 2]), 3).tolist() == [1, 0, 1, 2, 2, 0]


def test_statistics_come_from_the_training_split_only(tiny_cfg):
    from llmrec.data.prepare import TRAIN, prepare

    data = prepare(tiny_cfg)
    model = build_backbone({"name": "mf", "plugins": {"mclmr": {"aggregation": False, "cl_weight": 0.0}}},
                           n_items=data.n_items, n_users=data.n_users, max_len=8, n_behaviors=1)
    model.fit_data(data)
    train = data.split == TRAIN
    counts = np.bincount(data.item[train], minlength=data.n_items + 1)
    assert np.allclose(model.log_pop.numpy(), np.log1p(counts))
    held_out = data.item[~train]
    assert len(held_out) and not np.allclose(np.bincount(data.item, minlength=data.n_items + 1), counts)
    assert model.stratum_prior.sum() == pytest.approx(1.0)


def synthetic(tmp_path, n_users=200, n_items=60, per_user=25, beta=2.0, seed=0):
    """Interactions drawn from softmax(true preference + beta * log item propensity): popularity,
    independent of preference, confounds what users are seen to pick."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    pref = p @ q.T  # (U, I)
    log_prop = rng.normal(size=n_items) * 1.5
    lines = ["uid,iid,ts"]
    for u in range(n_users):
        logits = pref[u] + beta * log_prop
        prob = np.exp(logits - logits.max())
        for t, i in enumerate(rng.choice(n_items, per_user, replace=False, p=prob / prob.sum())):
            lines.append(f"u{u},i{i},{t}")
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    return pref, log_prop


@pytest.mark.parametrize("seed", [0, 1])
def test_backdoor_adjustment_recovers_preference_under_a_popularity_confounder(tmp_path, seed):
    from llmrec.train.run import setup
    from llmrec.train.trainer import Trainer

    pref, log_prop = synthetic(tmp_path, seed=seed)
    results = {}
    for label, plugins in (("naive", {}), ("adjusted", {"mclmr": {"aggregation": False, "cl_weight": 0.0}})):
        cfg = from_dict(RunConfig, {
            "data": {"source": "table", "path": str(tmp_path / "log.csv"), "split": "loo", "max_len": 30,
                     "columns": {"user": "uid", "item": "iid", "timestamp": "ts"},
                     "cache_dir": str(tmp_path / "cache")},
            "backbone": {"name": "mf", "hidden": 8, "plugins": plugins},
            "train": {"batch_size": 64, "lr": 0.05, "weight_decay": 0.0, "out_dir": str(tmp_path / label),
                      "progress": False},
        })
        torch.manual_seed(0)
        data, train, _, test, model = setup(cfg)
        trainer = Trainer(model, cfg.train, eval_cfg=cfg.eval, n_items=data.n_items)
        for _ in range(EPOCHS):
            trainer._epoch(train)
        model.eval()
        users = np.arange(data.n_users)
        with torch.no_grad():
            scores = model.score({"users": torch.from_numpy(users), "items": torch.zeros(len(users), 1).long(),
                                  "behaviors": torch.zeros(len(users), 1).long()})[:, 1:].numpy()
        # align model ids with the generator's ids
        u_idx = [int(data.user_vocab[u][1:]) for u in users]
        i_idx = [int(x[1:]) for x in data.item_vocab[1:]]
        truth = pref[np.ix_(u_idx, i_idx)]
        results[label] = {
            "pref": np.mean([spearmanr(scores[r], truth[r])[0] for r in range(len(users))]),
            "pop": np.mean([spearmanr(scores[r], log_prop[i_idx])[0] for r in range(len(users))]),
        }
    naive, adjusted = results["naive"], results["adjusted"]
    # measured (seed 0): naive pref 0.30 / pop 0.80; adjusted pref 0.43 / pop 0.45
    assert naive["pop"] > 0.6, results  # the naive scores rank largely by popularity ...
    assert adjusted["pop"] < naive["pop"] - 0.2, results  # ... the adjusted ones much less
    assert adjusted["pref"] > naive["pref"] + 0.08, results  # and follow the true preference better
    assert model.conformity.min() > 0.5  # the learned confounder effect is the one put in (beta > 0)


def test_contrastive_negatives_share_the_anchor_popularity_stratum():
    import torch.nn.functional as F

    model = wearing("mf", cl_temperature=0.5)
    with torch.no_grad():
        model.item_stratum.copy_((torch.arange(N_ITEMS + 1) > 10).long())  # items 1-10: 0, 11-20: 1
    g = torch.Generator().manual_seed(0)
    h, hk = torch.randn(5, 16, generator=g), torch.randn(5, 2, 16, generator=g)
    t = torch.tensor([1, 2, 11, 12, 13])
    pairs = torch.zeros(5, 2, dtype=torch.bool)
    pairs[:4, 0] = True  # anchors: the first four pairs, behaviour 0
    got = model.contrastive(h, hk, t, pairs)
    e = model.item_embeddings()[t[:4]]
    a, b = F.normalize(h[:4] * e, dim=-1), F.normalize(hk[:4, 0] * e, dim=-1)
    sim = a @ b.T / 0.5
    want = torch.stack([F.cross_entropy(sim[i, blk][None], torch.tensor([i % 2]))
                        for i, blk in zip(range(4), [slice(0, 2), slice(0, 2), slice(2, 4), slice(2, 4)])]).mean()
    assert torch.allclose(got, want, atol=1e-6)
    pairs[2:, 0] = False
    pairs[2, 0] = True  # anchors 1, 2 (stratum 0) and 11 (stratum 1, alone: no negative, left out)
    sim3 = sim[:3, :3]
    want = torch.stack([F.cross_entropy(sim3[i, :2][None], torch.tensor([i])) for i in range(2)]).mean()
    assert torch.allclose(model.contrastive(h, hk, t, pairs), want, atol=1e-6)


def test_confounder_check_reproduces_the_run_and_adds_the_term_back(tiny_cfg, tmp_path):
    # benchmarks/mclmr_confounder.py on a finished valid-only MF+MCLMR run: its ranked figure is the
    # run's own best valid; the restored ranking adds exactly c[Z_u] * log(1 + pop_i); a run without
    # results.json (still training) is not read.
    import json
    import shutil

    from llmrec.train.checkpoint import load_model
    from llmrec.train.run import run
    from tests.conftest import benchmark_module

    cfg = from_dict(RunConfig, {
        "data": {**vars(tiny_cfg)},
        "backbone": {"name": "mf", "hidden": 16, "plugins": {"mclmr": {"aggregation": False, "cl_weight": 0.0}}},
        "train": {"epochs": 3, "batch_size": 8, "out_dir": str(tmp_path / "sel" / "lr0.01"), "progress": False,
                  "lr": 0.01, "metric": "ndcg@20"},
        "eval": {"ks": [20], "test": False},
    })
    run(cfg)
    (tmp_path / "sel" / "running").mkdir()  # a run still training: a checkpoint, no results.json
    shutil.copy(tmp_path / "sel" / "lr0.01" / "best.safetensors", tmp_path / "sel" / "running")
    check = benchmark_module("mclmr_confounder")
    found = check.finished_checkpoints(tmp_path / "sel")
    assert found == [tmp_path / "sel" / "lr0.01" / "best.safetensors"]
    row = check.check(found[0])
    saved = json.loads((tmp_path / "sel" / "lr0.01" / "results.json").read_text())
    assert row["intervention"]["ndcg@20"] == pytest.approx(saved["best_valid_ndcg@20"], abs=1e-6)
    model, _ = load_model(found[0])
    model.eval()
    with torch.no_grad():
        model.conformity.copy_(torch.tensor([0.5, -1.0, 2.0]))
        batch = {"users": torch.tensor([0, 1, 2]), "items": torch.ones(3, 8, dtype=torch.long)}
        added = check.confounded(model)(batch) - model.score(batch)
        want = model.conformity[model.user_stratum[batch["users"]]].unsqueeze(1) * model.log_pop
        assert torch.allclose(added[:, 1:], want[:, 1:], atol=1e-5)
        assert added[:, 1:].abs().sum() > 0

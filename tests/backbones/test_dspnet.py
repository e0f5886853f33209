"""DSPnet: switches, the conditional InfoNCE by hand, no next-scene leak at evaluation, the
trainer's alternating adversary (bounded losses, separate optimisers, exact resume), and runs on
a generic CSV with a scene column."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmrec.backbones.dspnet import conditional_info_nce
from llmrec.backbones.registry import build_backbone
from llmrec.config import RunConfig, from_dict
from llmrec.train.checkpoint import load_checkpoint
from llmrec.train.run import run, setup
from llmrec.train.trainer import Trainer
from tests.backbones.test_contract import tiny_batch
from tests.conftest import crash_then_resume, needs_ml100k


def tiny_dspnet(**kw):
    torch.manual_seed(0)
    section = {"name": "dspnet", "hidden": 8, "n_layers": 1, "n_heads": 2, "inner": 16, "dropout": 0.0, **kw}
    return build_backbone(section, n_items=20, max_len=6, n_scenes=4)


def test_switches_remove_their_parameters():
    def tops(model):
        return {n.split(".")[0] for n, _ in model.named_parameters()}

    full = tops(tiny_dspnet())
    assert {"scene_enc", "enhance_item", "enhance_scene", "scene_out", "discriminator"} <= full
    assert not {"scene_enc", "enhance_item", "scene_out"} & tops(tiny_dspnet(scene_branch=False))
    assert not {"enhance_item", "enhance_scene"} & tops(tiny_dspnet(enhance_layers=0))
    off = tiny_dspnet(adv_weight=0.0)
    assert "discriminator" not in tops(off) and off.adversary() is None
    with pytest.raises(ValueError, match="scene branch needs scenes"):
        build_backbone({"name": "dspnet"}, n_items=20, max_len=6, n_scenes=1)
    plain = build_backbone({"name": "dspnet", "scene_branch": False}, n_items=20, max_len=6, n_scenes=1)
    assert plain.adversary() is not None and not hasattr(plain, "scene_emb")  # no scenes needed


@pytest.mark.parametrize("kw", [{}, {"scene_branch": False}, {"enhance_layers": 0}, {"ccr_weight": 0.0},
                                {"adv_weight": 0.0}, {"enhance_layers": 1}])
def test_every_switch_trains(kw):
    model = tiny_dspnet(**kw)
    loss = model.loss(tiny_batch())
    loss.backward()
    assert torch.isfinite(loss) and model.item_emb.weight.grad.abs().sum() > 0
    stats = model.extra_stats()
    assert ("loss_scene" in stats) == kw.get("scene_branch", True)
    assert ("loss_ccr" in stats) == (kw.get("ccr_weight", 0.1) > 0)
    assert ("loss_adv" in stats) == (kw.get("adv_weight", 0.01) > 0)


def test_conditional_info_nce_by_hand():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(4, 5, generator=g), dim=-1)
    b = F.normalize(torch.randn(4, 5, generator=g), dim=-1)
    # beta = 0: plain symmetric InfoNCE
    plain = 0.5 * (F.cross_entropy(a @ b.T / 0.5, torch.arange(4)) + F.cross_entropy(b @ a.T / 0.5, torch.arange(4)))
    assert torch.allclose(conditional_info_nce(a, b, 0.5, 0.0), plain, atol=1e-6)

    def one_way(x, y, beta):
        s = x @ y.T
        total = 0
        for i in range(4):
            others = [j for j in range(4) if j != i]
            w = torch.softmax(torch.stack([beta * s[i, j] for j in others]), 0) * 3
            neg = sum(w[k] * torch.exp(s[i, j] / 0.5) for k, j in enumerate(others))
            pos = torch.exp(s[i, i] / 0.5)
            total = total - torch.log(pos / (pos + neg))
        return total / 4

    want = 0.5 * (one_way(a, b, 2.0) + one_way(b, a, 2.0))
    assert torch.allclose(conditional_info_nce(a, b, 0.5, 2.0), want, atol=1e-5)
    assert conditional_info_nce(a[:1], b[:1], 0.5, 2.0) == 0  # no negatives


def test_evaluation_never_reads_the_next_scene_but_reads_past_scenes():
    model = tiny_dspnet().eval()
    batch = tiny_batch()
    with torch.no_grad():
        base = model.encode(batch)
        assert torch.equal(model.encode(dict(batch, target_scenes=torch.ones_like(batch["target_scenes"]))), base)
        assert not torch.allclose(model.encode(dict(batch, scenes=torch.full_like(batch["scenes"], 2))), base)


def test_scene_loss_skips_targets_without_a_scene():
    model = tiny_dspnet(ccr_weight=0.0, adv_weight=0.0)
    batch = tiny_batch()
    none = dict(batch, target_scenes=torch.zeros_like(batch["target_scenes"]))
    with torch.no_grad():
        model.loss(none)
        assert "loss_scene" not in model.extra_stats()
        model.loss(batch)
        assert model.extra_stats()["loss_scene"] > 0


def scene_run(tiny_cfg, out, **backbone):
    return from_dict(RunConfig, {
        "data": {**vars(tiny_cfg), "derive_scenes": "daypart"},
        "backbone": {"name": "dspnet", "hidden": 16, "n_layers": 1, "inner": 32, "dropout": 0.1, **backbone},
        "train": {"epochs": 4, "batch_size": 8, "out_dir": str(out), "progress": False, "lr": 0.003},
        "eval": {"ks": [5, 10]},
    })


def test_the_trainer_alternates_the_adversary_with_its_own_optimiser(tiny_cfg, tmp_path):
    cfg = scene_run(tiny_cfg, tmp_path / "r", adv_weight=0.5)
    data, train, valid, _, model = setup(cfg)
    trainer = Trainer(model, cfg.train, eval_cfg=cfg.eval, n_items=data.n_items)
    disc = {id(p) for p in model.discriminator.parameters()}
    assert not disc & {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert disc == {id(p) for g in trainer.adv_optimizer.param_groups for p in g["params"]}
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer.fit(train, valid)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.discriminator.parameters()))
    records = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    for r in records:  # a bounded game: neither side wins outright, nothing diverges
        assert 0.05 < r["loss_disc"] < 2.0 and 0.05 < r["loss_adv"] < 5.0, r
        assert np.isfinite(r["loss"]) and r["loss_ccr"] > 0 and r["loss_scene"] > 0


def test_resume_restores_the_adversary_and_its_optimiser(tiny_cfg, tmp_path, monkeypatch):
    run(scene_run(tiny_cfg, tmp_path / "full"))
    resumed = crash_then_resume(monkeypatch, lambda: run(scene_run(tiny_cfg, tmp_path / "resumed")))
    assert resumed["resumed"]
    full, res = (load_checkpoint(tmp_path / d / "last.safetensors") for d in ("full", "resumed"))
    assert any(k.startswith("discriminator.") for k in full["model"])
    assert all(torch.equal(full["model"][k], res["model"][k]) for k in full["model"])
    assert full["adversary_optimizer"]["state"].keys() == res["adversary_optimizer"]["state"].keys()
    for k, state in full["adversary_optimizer"]["state"].items():
        assert torch.equal(state["exp_avg"], res["adversary_optimizer"]["state"][k]["exp_avg"])


def test_dspnet_trains_on_a_generic_csv_with_a_scene_column(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["uid,iid,ts,ctx"]
    for u in range(30):
        for t, i in enumerate(rng.choice(25, 12, replace=False)):
            lines.append(f"{u},{i},{1000 * u + t},{['home', 'feed', 'search'][(t // 4) % 3]}")
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    cfg = from_dict(RunConfig, {
        "data": {"source": "table", "path": str(tmp_path / "log.csv"), "split": "loo", "max_len": 8,
                 "columns": {"user": "uid", "item": "iid", "timestamp": "ts", "scene": "ctx"},
                 "cache_dir": str(tmp_path / "cache")},
        "backbone": {"name": "dspnet", "hidden": 16, "n_layers": 1, "inner": 32},
        "train": {"epochs": 2, "batch_size": 8, "out_dir": str(tmp_path / "run"), "progress": False},
        "eval": {"ks": [5, 10]},
    })
    out = run(cfg)
    assert out["users"] == 30 and 0.0 <= out["test"]["ndcg@10"] <= out["test"]["hr@10"] <= 1.0
    ckpt = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert ckpt["backbone"]["n_scenes"] == 4  # '' (none) + three scenes


def test_next_scene_accuracy_and_its_baselines_by_hand():
    from llmrec.data.sequences import EvalExamples
    from llmrec.eval.scene import next_scene_accuracy

    inputs = {"item": np.array([[0, 1, 2], [3, 4, 5], [1, 2, 3], [2, 3, 4]]),
              "behaviors": np.ones((4, 3), np.int64),
              "scene": np.array([[0, 1, 1], [2, 2, 2], [1, 2, 3], [3, 3, 1]])}
    empty = (np.zeros(5, np.int64), np.zeros(0, np.int64))
    ex = EvalExamples(np.arange(4), inputs, empty, empty, 1, target_scene=np.array([1, 3, 3, 0]))

    class Fixed:  # predicts scene 3 for everyone
        def eval(self):
            return self

        def scene_logits(self, batch):
            logits = torch.zeros(len(batch["items"]), 4)
            logits[:, 3] = 1.0
            return logits

    out = next_scene_accuracy(Fixed(), ex)
    # user 3 has no held-out scene: left out. Truth (1, 3, 3); last input scenes (1, 2, 3);
    # input scene counts: 1 x4, 2 x4, 3 x4 -> majority = 1 (first of the ties)
    assert out["n"] == 3 and list(out["users"]) == [0, 1, 2]
    assert out["accuracy"] == pytest.approx(2 / 3) and out["repeat_last"] == pytest.approx(2 / 3)
    assert out["majority"] == pytest.approx(1 / 3)
    assert list(out["hits"]["model"]) == [0, 1, 1] and list(out["hits"]["repeat_last"]) == [1, 0, 1]
    assert next_scene_accuracy(object(), ex) is None  # a model without a scene head


def test_run_reports_next_scene_accuracy_for_dspnet_only(tiny_cfg, tmp_path):
    cfg = scene_run(tiny_cfg, tmp_path / "d")
    cfg.train.epochs = 1
    out = run(cfg)
    ns = out["next_scene"]
    assert ns["n"] > 0 and 0 <= ns["accuracy"] <= 1 and 0 <= ns["repeat_last"] <= 1
    hits = np.load(tmp_path / "d" / "test_next_scene.npz")
    assert hits["model"].mean() == pytest.approx(ns["accuracy"])
    assert "Next-scene accuracy" in (tmp_path / "d" / "results.md").read_text()
    cfg = scene_run(tiny_cfg, tmp_path / "s", scene_branch=False)
    cfg.train.epochs = 1
    assert run(cfg)["next_scene"] is None


def test_ablate_reports_next_scene_accuracy_beside_repeat_last(tiny_cfg, tmp_path):
    from llmrec.experiments import ablate

    small = {"hidden": 16, "n_layers": 1, "inner": 32}
    ab = {"base": {"data": {**vars(tiny_cfg), "derive_scenes": "daypart"},
                   "train": {"epochs": 1, "batch_size": 8, "metric": "ndcg@10"}, "eval": {"ks": [10]}},
          "backbones": {"sasrec": small, "dspnet": small}, "seeds": [0, 1], "variants": ["default"],
          "custom": {"default": {}}, "baseline": "sasrec", "metrics": ["hr@10", "ndcg@10"]}
    report = ablate.run_ablation(ab, tmp_path / "ab", progress=False)
    rows = {r["backbone"]: r for r in report["rows"]}
    assert "next_scene" not in rows["sasrec"]
    ns = rows["dspnet"]["next_scene"]
    runs = [np.load(tmp_path / "ab" / "dspnet" / "default" / f"seed{s}" / "test_next_scene.npz") for s in (0, 1)]
    assert ns["accuracy"] == pytest.approx(np.mean([r["model"].mean() for r in runs]))
    want = (np.mean([r["model"] for r in runs], axis=0) - runs[0]["repeat_last"]).mean()
    assert ns["vs_repeat_last"]["mean_diff"] == pytest.approx(want)
    assert "| dspnet | " in (tmp_path / "ab" / "results.md").read_text().split("Next-scene accuracy")[1]


@needs_ml100k
@pytest.mark.slow
def test_dspnet_trains_on_movielens_with_derived_scenes(tmp_path):
    cfg = from_dict(RunConfig, {
        "data": {"source": "ml-100k", "split": "loo", "derive_scenes": "daypart", "cache_dir": str(tmp_path / "c")},
        "backbone": {"name": "dspnet", "hidden": 32, "n_layers": 1, "inner": 64},
        "train": {"epochs": 2, "out_dir": str(tmp_path / "r"), "progress": False},
    })
    out = run(cfg)
    assert any("scenes derived" in d for d in out["derived"])
    assert out["test"]["ndcg@10"] > 0.01  # well above random (~0.003) after two epochs
    ns = out["next_scene"]
    assert ns["n"] > 900 and ns["accuracy"] > ns["majority"] - 0.05  # learned scene head, not noise
    record = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss_scene", "loss_ccr", "loss_adv", "loss_disc"} <= set(record)


def test_ccr_views_cover_at_most_ccr_rows_sequences():
    model = tiny_dspnet(ccr_rows=2, adv_weight=0.0)
    sizes = []
    original = model.sequences
    model.sequences = lambda items, scenes: sizes.append(items.size(0)) or original(items, scenes)
    model.loss(tiny_batch())  # batch of 4: the main pass, then both views of 2 rows in one pass
    assert sizes == [4, 4]
    sizes.clear()
    model.config.ccr_rows = 0  # all rows
    model.loss(tiny_batch())
    assert sizes == [4, 8]

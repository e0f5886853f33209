"""Multi-behaviour backbones on written files in the real formats (Taobao UserBehavior.csv, Tenrec),
and SASRec's behaviour-embedding option by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llmrec.backbones.registry import build_backbone
from llmrec.config import RunConfig, from_dict
from llmrec.train.run import run
from llmrec.train.checkpoint import load_checkpoint
from tests.backbones.test_contract import tiny_batch


def write_taobao(path, n_users=30, per_user=12, n_items=25, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for t, i in enumerate(rng.choice(n_items, per_user, replace=False)):
            for b in rng.choice(["pv", "fav", "cart", "buy"], rng.integers(1, 3), replace=False):
                rows.append(f"{u},{i},{i % 5},{b},{1000 * u + t}")
    path.write_text("\n".join(rows) + "\n")


def write_tenrec(path, n_users=30, per_user=12, n_items=25, seed=0):
    rng = np.random.default_rng(seed)
    lines = ["user_id,item_id,click,follow,like,share,video_category"]
    for u in range(n_users):
        for i in rng.choice(n_items, per_user, replace=False):
            flags = rng.random(4) < [0.9, 0.1, 0.4, 0.1]
            flags[0] |= not flags.any()
            lines.append(f"{u},{i}," + ",".join(str(int(f)) for f in flags) + f",{i % 3}")
    path.write_text("\n".join(lines) + "\n")


def run_on(tmp_path, source, filename, writer, backbone):
    writer(tmp_path / filename)
    cfg = from_dict(RunConfig, {
        "data": {"source": source, "path": str(tmp_path / filename), "split": "loo", "max_len": 8,
                 "cache_dir": str(tmp_path / "cache")},
        "backbone": backbone,
        "train": {"epochs": 2, "batch_size": 8, "out_dir": str(tmp_path / "run"), "progress": False},
        "eval": {"ks": [5, 10, 20]},
    })
    torch.manual_seed(0)
    return run(cfg)


@pytest.mark.parametrize("source,filename,writer,n_behaviors", [
    ("taobao", "UserBehavior.csv", write_taobao, 4), ("tenrec", "ctr_data.csv", write_tenrec, 4)])
def test_blade_trains_on_written_multibehaviour_files(tmp_path, source, filename, writer, n_behaviors):
    out = run_on(tmp_path, source, filename, writer,
                 {"name": "blade", "hidden": 16, "n_layers": 1, "inner": 32, "n_experts": 2})
    assert out["users"] == 30 and out["derived"] == []  # real behaviours, nothing derived
    ckpt = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert ckpt["backbone"]["n_behaviors"] == n_behaviors
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["loss_cl"] > 0 and r["expert0_usage"] + r["expert1_usage"] == pytest.approx(1, abs=1e-4)
               for r in records)
    assert 0.0 <= out["test"]["hr@5"] <= out["test"]["hr@10"] <= 1.0


def test_sasrec_behaviour_embedding_trains_on_a_written_file(tmp_path):
    out = run_on(tmp_path, "taobao", "UserBehavior.csv", write_taobao,
                 {"name": "sasrec", "behaviors": True, "hidden": 16, "n_layers": 1, "inner": 32})
    ckpt = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert ckpt["backbone"]["behaviors"] and ckpt["model"]["beh_emb.weight"].shape == (4, 16)
    assert 0.0 <= out["test"]["ndcg@5"] <= out["test"]["hr@5"] <= 1.0


def tiny_sasrec(**kw):
    torch.manual_seed(0)
    section = {"name": "sasrec", "hidden": 8, "n_layers": 1, "n_heads": 2, "inner": 16, "dropout": 0.0, **kw}
    return build_backbone(section, n_items=20, max_len=6, n_behaviors=3)


def test_sasrec_behaviour_embedding_adds_the_set_sum_at_the_input():
    plain, beh = tiny_sasrec(), tiny_sasrec(behaviors=True)
    beh.load_state_dict({**plain.state_dict(), "beh_emb.weight": beh.beh_emb.weight}, strict=True)
    batch = tiny_batch()
    with torch.no_grad():
        beh.beh_emb.weight.zero_()  # zero behaviour embeddings: exactly plain SASRec
        assert torch.allclose(beh.encode(batch), plain.eval().encode(batch), atol=1e-6)
        beh.beh_emb.weight.normal_()
        # a set's embedding is the sum of its members': {0, 2} == item + e0 + e2
        captured = {}
        handle = beh.blocks[0].register_forward_pre_hook(lambda m, args: captured.update(x=args[0]))
        beh.eval().encode(dict(batch, behaviors=torch.full_like(batch["behaviors"], 0b101)))
        handle.remove()
        items = batch["items"]
        want = (beh.item_emb(items) * 8 ** 0.5 + beh.pos_emb(torch.arange(6)) + beh.beh_emb.weight[[0, 2]].sum(0))
        want = want * (items != 0).unsqueeze(-1)
        assert torch.allclose(captured["x"], want, atol=1e-5)
    with pytest.raises(ValueError, match="several behaviours"):
        build_backbone({"name": "sasrec", "behaviors": True}, n_items=20, max_len=6, n_behaviors=1)
    assert "beh_emb.weight" not in plain.state_dict()  # off by default: plain SASRec unchanged

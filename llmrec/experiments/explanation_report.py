"""Scores a finished (or partial) comparison folder: metrics per method and split, BEAT minus
every other method with paired bootstrap 95% intervals over pairs, Markdown + JSON + PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.atomic import save_figure, write_text
from llmrec.eval import text as tm
from llmrec.eval.bootstrap import paired_bootstrap, paired_bootstrap_corpus
from llmrec.llm.jobs import read_results

PER_PAIR = ["rouge_l", "bert_f1", "lm_score", "lm_ref_to_gen", "lm_gen_to_ref", "grounded",
            "pair_id", "pair_rr", "evidence_id", "evidence_rr", "echo", "copies_evidence", "hallucinated",
            "names_evidence", "feature_match", "feature_match_other"]
FAITH = [("pair_id", "pair id top-1"), ("pair_rr", "pair MRR"), ("evidence_id", "evidence id top-1"),
         ("evidence_rr", "evidence MRR"), ("usr", "USR"), ("echo", "echo"), ("copies_evidence", "copies evidence"),
         ("hallucinated", "halluc. titles"),
         ("names_evidence", "names evidence"), ("feature_match", "feature match"),
         ("feature_match_other", "feature match, other pair")]
SHOWN = ["bleu1", "bleu4", "rouge_l", "bert_f1", "lm_score", "distinct1", "distinct2", "grounded",
         "prompt_tokens", "segment_tokens", "ms"]


def phrases_for(rows: pd.DataFrame, tokenizer: Any) -> list[list[str]]:
    recs = tokenizer.records if tokenizer is not None else {"user": {}, "item": {}}
    def of(side: str, idx: int) -> list[str]:
        return list(recs[side].get(int(idx), {}).get("phrases", []))

    return [of("user", u) + of("item", i) for u, i in zip(rows["user"], rows["item"])]


def score_split(gens: pd.DataFrame, rows: pd.DataFrame, phrases: list[list[str]], *, scorer: Any,
                bert_model: str, faith: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-pair arrays and corpus figures of one method on one split (rows and gens in one order).
    ``faith`` (see :func:`faith_context`) adds the faithfulness metrics."""
    hyps, refs = list(gens["text"]), list(rows["reference"])
    per: dict[str, np.ndarray] = {"rouge_l": tm.rouge_l(hyps, refs),
                                  "bert_f1": tm.bert_score_f1(hyps, refs, model=bert_model),
                                  "grounded": tm.grounded(hyps, list(rows["title"]), phrases)}
    extra: dict[str, float] = {}
    if faith is not None:
        from llmrec.eval import faithfulness as fm

        if faith["distractors"] is not None:
            pair = fm.identify(faith["encoder"], hyps, refs, faith["distractors"])
            ev = fm.identify(faith["encoder"], hyps, faith["evidence_text"], faith["distractors"])
            per.update(pair_id=pair["top1"], pair_rr=pair["rr"], evidence_id=ev["top1"], evidence_rr=ev["rr"])
            from llmrec.eval.aspects import feature_match

            fmr = feature_match(hyps, refs, faith["distractors"])
            per.update(feature_match=fmr["own"], feature_match_other=fmr["other"])
        per["echo"] = fm.echo(hyps, faith["template"])
        per["copies_evidence"] = fm.copies_evidence(hyps, faith["evidence_text"])
        per["hallucinated"], _ = fm.hallucinated_titles(hyps, faith["catalogue"], faith["evidence_titles"],
                                                        list(rows["title"]))
        per["names_evidence"] = fm.mentions(hyps, faith["evidence_titles"])
        extra["usr"] = fm.usr(hyps)
    if scorer is not None:
        per.update(tm.lm_scores(scorer, hyps, refs))
    stats = {f"bleu{o}": tm.bleu_stats(hyps, refs, o) for o in (1, 4)}
    corpus = {k: tm.bleu_from_stats(v.sum(0), int(k[-1])) for k, v in stats.items()}
    corpus.update(distinct1=tm.distinct_n(hyps, 1), distinct2=tm.distinct_n(hyps, 2))
    corpus.update({k: float(v.mean()) for k, v in per.items()})
    corpus.update(extra)
    for k in ("prompt_tokens", "segment_tokens", "ms"):
        corpus[k] = float(np.median(gens[k]))
    return {"per_pair": per, "stats": stats, "corpus": corpus, "n": len(hyps)}


def load_gens(folder: Path, split: str, rows: pd.DataFrame) -> pd.DataFrame | None:
    path = folder / f"gen_{split}.jsonl"
    if not path.exists():
        return None
    got = {r["id"]: r["parsed"] for r in read_results(path)}
    if any(i not in got for i in rows["id"]):
        return None  # unfinished: scored once complete
    return pd.DataFrame([{"id": i, **got[i]} for i in rows["id"]])


def compare(scores: dict[str, dict], reference: str = "beat", *, n_resamples: int = 2000, seed: int = 0) -> dict:
    """``reference`` minus every other method, per metric, paired over the same pairs."""
    if reference not in scores:
        return {}
    ref = scores[reference]
    out: dict[str, dict] = {}
    for name, other in scores.items():
        if name == reference:
            continue
        d: dict[str, Any] = {}
        for k in ("bleu1", "bleu4"):
            order = int(k[-1])
            d[k] = paired_bootstrap_corpus(other["stats"][k], ref["stats"][k],
                                           lambda s, o=order: tm.bleu_from_stats(s, o),
                                           n_resamples=n_resamples, seed=seed)
        for k in PER_PAIR:
            if k in ref["per_pair"] and k in other["per_pair"]:
                d[k] = paired_bootstrap(other["per_pair"][k], ref["per_pair"][k], n_resamples=n_resamples, seed=seed)
        out[name] = d
    return out


def markdown(result: dict, labels: dict[str, str]) -> str:
    lines = []
    reference = result.get("reference", "beat")
    ref_label = labels.get(reference, reference)
    for split, block in result["splits"].items():
        lines += [f"### {split} ({block['n']} pairs)", "",
                  "| method | BLEU-1 | BLEU-4 | ROUGE-L | BERTScore F1 | LM score | distinct-1 | distinct-2 | "
                  "grounding | prompt tokens | record tokens | ms / expl. |",
                  "|---|" + "---:|" * 11]
        for name, c in block["methods"].items():
            lines.append(f"| {labels.get(name, name)} | {c['bleu1']:.4f} | {c['bleu4']:.4f} | {c['rouge_l']:.4f} | "
                         f"{c['bert_f1']:.4f} | {c.get('lm_score', float('nan')):.3f} | {c['distinct1']:.3f} | "
                         f"{c['distinct2']:.3f} | {c['grounded']:.3f} | {c['prompt_tokens']:.0f} | "
                         f"{c['segment_tokens']:.0f} | {c['ms']:.0f} |")
        faith = [(k, t) for k, t in FAITH if any(k in c for c in block["methods"].values())]
        if faith:
            lines += ["", f"Is each explanation about its pair? ({split}; identification among 1 + "
                      f"{block.get('distractors', 19)} pairs, chance top-1 {1 / (1 + block.get('distractors', 19)):.2f})", "",
                      "| method | " + " | ".join(t for _, t in faith) + " |", "|---|" + "---:|" * len(faith)]
            for name, c in block["methods"].items():
                lines.append(f"| {labels.get(name, name)} | " + " | ".join(
                    f"{c[k]:.3f}" if k in c else "-" for k, _ in faith) + " |")
        if block.get("differences"):
            lines += ["", f"{ref_label} minus each method on {split} (paired bootstrap 95% interval over pairs):", "",
                      DIFF_HEAD, "|---|" + "---|" * len(DIFF_KEYS)]
            lines += _diff_rows(block["differences"], labels)
        if block.get("permutation"):
            lines += ["", f"Permutation controls on {split}: each trained method minus the same model given the "
                      "tokens or evidence of another pair (paired bootstrap 95% interval over pairs; near 0 = "
                      "the pair-specific content of the inputs is not used):", "",
                      DIFF_HEAD.replace("| vs |", "| control |"), "|---|" + "---|" * len(DIFF_KEYS)]
            lines += _diff_rows(block["permutation"], labels)
        lines.append("")
    return "\n".join(lines)


DIFF_KEYS = ("bleu1", "bleu4", "rouge_l", "bert_f1", "lm_score", "grounded", "pair_id", "evidence_id", "echo",
             "hallucinated", "feature_match")
DIFF_HEAD = ("| vs | BLEU-1 | BLEU-4 | ROUGE-L | BERTScore F1 | LM score | grounding | pair id | evidence id | "
             "echo | halluc. | feature match |")


def _diff_rows(differences: dict[str, dict], labels: dict[str, str]) -> list[str]:
    return [f"| {labels.get(name, name)} | " + " | ".join(_ci(d.get(k)) for k in DIFF_KEYS) + " |"
            for name, d in differences.items()]


def _ci(d: dict | None) -> str:
    if not d:
        return "-"
    return f"{d['mean_diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"


def plot(result: dict, labels: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(result["splits"])
    reference = result.get("reference", "beat")
    metrics = [("bleu1", "BLEU-1"), ("bert_f1", "BERTScore F1"), ("rouge_l", "ROUGE-L"), ("grounded", "grounding")]
    fig, axes = plt.subplots(len(splits), len(metrics), figsize=(4 * len(metrics), 3.2 * len(splits)), squeeze=False)
    for r, split in enumerate(splits):
        methods = result["splits"][split]["methods"]
        names = list(methods)
        colours = ["tab:red" if n == reference else "tab:gray" for n in names]
        for c, (key, title) in enumerate(metrics):
            ax = axes[r][c]
            vals = [methods[n][key] for n in names]
            ax.barh(range(len(names)), vals, color=colours)
            ax.set_yticks(range(len(names)), [labels.get(n, n) for n in names] if c == 0 else [""] * len(names),
                          fontsize=7)
            ax.invert_yaxis()
            ax.set_title(f"{title} ({split})", fontsize=9)
    if result.get("references"):
        fig.suptitle(f"references: {result['references']}", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def save(result: dict, out: Path, labels: dict[str, str], title: str) -> None:
    write_text(out / "results.json", json.dumps(result, indent=2))
    refs = f"References: {result['references']}." if result.get("references") else ""
    write_text(out / "results.md", f"## {title}\n\n{refs}\n\n" + markdown(result, labels))
    plot(result, labels, out / "results.png")


def faith_context(rows: pd.DataFrame, evidence: Any, template: str, *, encoder: Any, seed: int,
                  k: int = 19) -> dict[str, Any]:
    """What the faithfulness metrics of one split need: each pair's evidence (the default method's,
    for every method alike), seeded distractors (fewer than ``k`` on small samples: recorded), the
    title catalogue and the method's instruction text (for echo)."""
    from llmrec.eval import faithfulness as fm

    evs = [evidence(int(u), int(i)) for u, i in zip(rows["user"], rows["item"])]
    users, items = rows["user"].to_numpy(), rows["item"].to_numpy()
    ok = (users[:, None] != users[None, :]) & (items[:, None] != items[None, :])
    k_eff = int(min(k, ok.sum(1).min())) if len(rows) else 0
    return {"encoder": encoder, "evidence_text": [e.text() for e in evs], "evidence_titles": [e.titles for e in evs],
            "distractors": fm.distractors(users, items, k=k_eff, seed=seed) if k_eff >= 1 else None,
            "k": k_eff, "catalogue": sorted(set(evidence.titles.values())), "template": template}

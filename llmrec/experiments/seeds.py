"""Several seeds of one stage-2 sweep, pooled (``llmrec eval seeds --runs A,B,C --reference constant``).

Each run folder is a scored sweep (``llmrec eval explanations``) with its own ``train.seed`` over the
same evaluation pairs. Per method and split: the corpus metrics of every seed, their mean and sample
standard deviation. Per method: the reference minus it, for each seed, and averaged over seeds with a
paired bootstrap 95% interval over pairs (a resample draws pairs once and averages the difference over
the seeds on them). That interval covers which pairs were drawn, not how much another seed would move
the figures; the per-seed columns show that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.atomic import save_figure, write_text
from llmrec.errors import ConfigError
from llmrec.eval import text as tm
from llmrec.eval.bootstrap import paired_bootstrap, paired_bootstrap_corpus

METRICS = [("bleu1", "BLEU-1"), ("bleu4", "BLEU-4"), ("rouge_l", "ROUGE-L"), ("bert_f1", "BERTScore F1"),
           ("lm_score", "LM score"), ("grounded", "grounding")]


def load_scores(run: Path, split: str) -> dict[str, dict]:
    """Method -> cached scores of one split (``<method>/scores_<split>.json``, written by scoring)."""
    from llmrec.experiments.compare import read_scores

    out = {}
    for path in sorted(run.glob(f"*/scores_{split}.json")):
        saved = read_scores(path)
        out[path.parent.name] = {**saved, "ids": json.loads(saved["key"])[0]}
    return out


def pool(runs: list[Path], split: str, reference: str, *, methods: list[str] | None = None,
         n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The seeds of one split side by side; see the module docstring."""
    per_run = [load_scores(Path(r), split) for r in runs]
    wanted = methods or sorted(set.intersection(*(set(s) for s in per_run)))
    every = [reference, *wanted]
    for run, scores in zip(runs, per_run):
        lacking = [m for m in every if m not in scores]
        if lacking:
            raise ConfigError(f"{run}: no scores_{split}.json for {lacking} (score the sweep first: "
                              "`llmrec eval explanations --score-only`)")
    ids = per_run[0][reference]["ids"]
    for run, scores in zip(runs, per_run):
        for m in every:
            if scores[m]["ids"] != ids:
                raise ConfigError(f"{run}/{m}: evaluated on other {split} pairs than {runs[0]}/{reference}")
    keys = [k for k, _ in METRICS if all(k in s[m]["corpus"] for s in per_run for m in every)]
    corpus = {m: {k: [s[m]["corpus"][k] for s in per_run] for k in keys} for m in every}
    summary = {m: {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                       "seeds": v} for k, v in c.items()} for m, c in corpus.items()}
    differences = {}
    for m in wanted:
        if m == reference:
            continue
        d: dict[str, Any] = {}
        for k in keys:
            per_seed = [a - b for a, b in zip(corpus[reference][k], corpus[m][k])]
            if k.startswith("bleu"):
                order = int(k[-1])
                ref = np.stack([s[reference]["stats"][k] for s in per_run], 1)  # (pairs, seeds, stats)
                other = np.stack([s[m]["stats"][k] for s in per_run], 1)
                ci = paired_bootstrap_corpus(other, ref, lambda x, o=order: _mean_bleu(x, o),
                                             n_resamples=n_resamples, seed=seed)
            else:
                ref = np.mean([s[reference]["per_pair"][k] for s in per_run], 0)
                other = np.mean([s[m]["per_pair"][k] for s in per_run], 0)
                ci = paired_bootstrap(other, ref, n_resamples=n_resamples, seed=seed)
            d[k] = {**ci, "per_seed": per_seed}
        differences[m] = d
    return {"split": split, "n": len(ids), "runs": [str(r) for r in runs], "reference": reference, "metrics": keys,
            "methods": summary, "differences": differences}


def _mean_bleu(stats: np.ndarray, order: int) -> float:
    """Corpus BLEU of each seed's (summed) statistics, averaged over seeds: ``stats`` is (seeds, k)."""
    return float(np.mean([tm.bleu_from_stats(s, order) for s in stats]))


def markdown(blocks: list[dict], labels: dict[str, str]) -> str:
    lines = []
    for b in blocks:
        n_seeds = len(b["runs"])
        ref = labels.get(b["reference"], b["reference"])
        shown = [(k, t) for k, t in METRICS if k in b["metrics"]]
        lines += [f"### {b['split']} ({b['n']} pairs, {n_seeds} seeds): mean ± sd over seeds", "",
                  "| method | " + " | ".join(t for _, t in shown) + " |", "|---|" + "---:|" * len(shown)]
        for m, s in b["methods"].items():
            lines.append(f"| {labels.get(m, m)} | " + " | ".join(f"{s[k]['mean']:.4f} ± {s[k]['sd']:.4f}"
                                                               for k, _ in shown) + " |")
        lines += ["", f"{ref} minus each method: averaged over seeds [paired bootstrap 95% interval over pairs]; "
                  "then each seed's difference", "",
                  "| vs | metric | mean over seeds [95% CI] | per seed |", "|---|---|---|---|"]
        for m, d in b["differences"].items():
            for k, title in shown:
                x = d[k]
                seeds = ", ".join(f"{v:+.4f}" for v in x["per_seed"])
                lines.append(f"| {labels.get(m, m)} | {title} | {x['mean_diff']:+.4f} "
                             f"[{x['ci_low']:+.4f}, {x['ci_high']:+.4f}] | {seeds} |")
        lines.append("")
    return "\n".join(lines)


def plot(blocks: list[dict], labels: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("bleu1", "BLEU-1"), ("bert_f1", "BERTScore F1")]
    fig, axes = plt.subplots(len(blocks), len(metrics), figsize=(5 * len(metrics), 0.5 + 0.45 * max(
        len(b["methods"]) for b in blocks) * len(blocks)), squeeze=False)
    for r, b in enumerate(blocks):
        names = list(b["methods"])
        for c, (key, title) in enumerate(metrics):
            ax = axes[r][c]
            for y, m in enumerate(names):
                vals = b["methods"][m][key]["seeds"]
                ax.scatter(vals, [y] * len(vals), s=14, color="tab:gray")
                ax.plot([np.mean(vals)] * 2, [y - 0.3, y + 0.3], color="tab:red" if m == b["reference"] else "k")
            ax.set_yticks(range(len(names)), [labels.get(m, m) for m in names] if c == 0 else [""] * len(names),
                          fontsize=7)
            ax.invert_yaxis()
            ax.set_title(f"{title} ({b['split']}; dots = seeds, bar = mean)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def save(blocks: list[dict], out: Path, labels: dict[str, str], title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "seeds.json", json.dumps(blocks, indent=2))
    write_text(out / "seeds.md", f"## {title}\n\n" + markdown(blocks, labels))
    plot(blocks, labels, out / "seeds.png")

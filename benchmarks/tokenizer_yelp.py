"""Behaviour tokenizer (BEAT stage 1) on XRec Yelp: reconstruction, codebooks, ablations, cold start.

One invocation trains every variant on the same seeded edge split (10% test, 5% valid, uniform
over edges), each in its own child process (so peak memory is per variant), with the same epoch
cap and early stopping on valid HR@20:

  tokens       the full model (macro + micro tokens, macro InfoNCE, micro masked reconstruction),
               re-seeding of dead codes OFF (the setting the codebook-usage target is judged in)
  reseed       the same with re-seeding on
  continuous   the same without quantisation (continuous tokens)
  lightgcn     plain LightGCN (BPR), the baseline
  no_macro / no_micro / no_semantics   ablations of the full model
  cold         the full model retrained without a seeded 5% of users

Then cold start: the held-out users get tokens from their own train/valid interactions
(propagation from neighbours) in the `cold` model and are ranked on their test edges, against the
full model's learned tokens for the same users and targets (paired bootstrap over users); and
inside the full model, tokens re-assigned from interactions are compared with the learned ones
(share of matching codes per position, with the chance level sum_k p_k^2).

Child results are kept, so an interrupted run resumes (``--fresh`` starts over).
Writes results/tokenizer_yelp.{json,md,png}.

    python benchmarks/tokenizer_yelp.py [--epochs 4] [--variants tokens lightgcn ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from llmrec.eval.bootstrap import paired_bootstrap  # noqa: E402
from llmrec.tokenizer.edges import rank_edges  # noqa: E402

VARIANTS = {
    "tokens": ["model.reseed_dead_codes=false"],
    "reseed": ["model.reseed_dead_codes=true"],
    "continuous": ["model.quantize=false"],
    "lightgcn": ["model.plain_lightgcn=true"],
    "no_macro": ["model.reseed_dead_codes=false", "model.use_macro=false"],
    "no_micro": ["model.reseed_dead_codes=false", "model.use_micro=false"],
    "no_semantics": ["model.reseed_dead_codes=false", "semantic.macro=false", "semantic.micro=false"],
    "cold": ["model.reseed_dead_codes=false", "train.holdout_users=0.05"],
}
METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


def train_variant(name: str, args, work: Path) -> dict:
    out = work / name
    if (out / "results.json").exists() and not args.fresh:
        print(f"  reusing {name}")
        return json.loads((out / "results.json").read_text())
    cmd = [sys.executable, "-m", "llmrec", "tokenizer", "train", "-c", str(args.config), "--out", str(out),
           f"train.epochs={args.epochs}", f"train.seed={args.seed}", "train.resume=true", *VARIANTS[name]]
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-4000:]}")
    print(f"  {name}: {time.perf_counter() - t:.0f} s")
    return json.loads((out / "results.json").read_text())


def per_user(work: Path, name: str) -> dict[str, np.ndarray]:
    z = np.load(work / name / "test_per_user.npz")
    return {k: z[k] for k in z.files}


def cold_start(work: Path) -> dict:
    from llmrec.tokenizer.artifacts import TrainedTokenizer

    full, cold = TrainedTokenizer(work / "tokens"), TrainedTokenizer(work / "cold")
    users = cold.split.cold_users
    n_items = len(cold.vocab["item"]) - 1
    known = {int(u): cold.split.cold[cold.split.cold[:, 0] == u, 1] for u in users}
    users = np.array([u for u in users if len(known[int(u)])])
    # cold model: tokens from interactions only
    enc_c = cold.model.encode_all(cold.adj)
    vec = torch.zeros(len(cold.vocab["user"]), enc_c["item_vec"].size(1))
    for u in users:
        vec[u] = cold.assign_from_interactions("user", known[int(u)])["vector"]
    targets = cold.split.cold_test[np.isin(cold.split.cold_test[:, 0], users)]
    m_cold, pu_cold, eval_users = rank_edges(lambda b: vec[b] @ enc_c["item_vec"].T, targets, [cold.split.cold],
                                             n_items, ks=[10, 20])
    # full model: learned tokens, same users, same targets, same masks
    enc_f = full.model.encode_all(full.adj)
    m_full, pu_full, eval_users_f = rank_edges(lambda b: full.model.score(enc_f, b), targets, [cold.split.cold],
                                               n_items, ks=[10, 20])
    assert np.array_equal(eval_users, eval_users_f)
    ci = {k: paired_bootstrap(pu_full[k], pu_cold[k], seed=0) for k in ("ndcg@10", "hr@20")}
    # inside the full model: re-assign the same users from their training interactions
    train_f = full.split.train
    learned = full.codes("user")
    match = []
    for u in users:
        items = train_f[train_f[:, 0] == u, 1]
        if len(items):
            match.append(np.array(full.assign_from_interactions("user", items)["codes"]) == learned[u])
    match = np.array(match, dtype=float)
    names = full.token_names()
    chance = []
    for pos in range(len(names)):
        counts = np.bincount(learned[:, pos])
        p = counts / counts.sum()
        chance.append(float((p ** 2).sum()))
    return {"users": int(len(users)), "target_edges": int(len(targets)),
            "ranking_assigned_tokens_retrained_model": m_cold, "ranking_learned_tokens_full_model": m_full,
            "assigned_minus_learned": ci,
            "reassignment_match_share": {n: float(match[:, i].mean()) for i, n in enumerate(names)},
            "chance_match_share": dict(zip(names, chance)),
            "all_positions_match": float(match.all(1).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=ROOT / "configs" / "tokenizer" / "yelp.yaml", type=Path)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--work", type=Path, default=HERE / "results" / "work" / "tokenizer_yelp")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    runs = {name: train_variant(name, args, args.work) for name in args.variants}
    out: dict = {"dataset": "XRec Yelp", "config": str(args.config), "epochs_cap": args.epochs, "seed": args.seed,
                 "machine": "2-core CPU, no GPU", "variants": {}}
    for name, r in runs.items():
        out["variants"][name] = {"test": {k: r["test"][k] for k in METRICS}, "best_epoch": r["best_epoch"],
                                 "epochs_run": r["epochs_run"], "stopped_by": r["stopped_by"],
                                 "median_epoch_seconds": r["median_epoch_seconds"], "peak_rss_mb": r["peak_rss_mb"],
                                 "codebooks": r["codebooks"], "text_coverage": r["text_coverage"],
                                 "parameters": r["parameters"]}
    pairs = {}
    base = per_user(args.work, "tokens") if "tokens" in runs else None
    for name in runs:
        if base is not None and name not in ("tokens", "cold"):
            other = per_user(args.work, name)
            pairs[f"{name} - tokens"] = paired_bootstrap(base["ndcg@20"], other["ndcg@20"], seed=0)
    out["paired_ndcg@20"] = pairs
    if "tokens" in runs and "cold" in runs:
        out["cold_start"] = cold_start(args.work)
    (HERE / "results" / "tokenizer_yelp.json").write_text(json.dumps(out, indent=1))
    md = markdown(out)
    (HERE / "results" / "tokenizer_yelp.md").write_text(md + "\n")
    plot(args.work, runs, HERE / "results" / "tokenizer_yelp.png")
    print(md)


def markdown(out: dict) -> str:
    rows = [f"### Behaviour tokenizer on {out['dataset']} — held-out edges, full ranking "
            f"(seed {out['seed']}, at most {out['epochs_cap']} epochs)", "",
            "| variant | HR@10 | NDCG@10 | HR@20 | NDCG@20 | best epoch | s/epoch (median) | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|"]
    for name, v in out["variants"].items():
        t = v["test"]
        rows.append(f"| {name} | {t['hr@10']:.4f} | {t['ndcg@10']:.4f} | {t['hr@20']:.4f} | {t['ndcg@20']:.4f} | "
                    f"{v['best_epoch']}/{v['epochs_run']} | {v['median_epoch_seconds']:.1f} | {v['peak_rss_mb']:.0f} |")
    if out["paired_ndcg@20"]:
        rows += ["", "Paired bootstrap over test users, NDCG@20 difference to `tokens` (95% interval):", "",
                 "| comparison | mean diff | 95% CI | users |", "|---|---|---|---|"]
        rows += [f"| {k} | {v['mean_diff']:+.4f} | [{v['ci_low']:+.4f}, {v['ci_high']:+.4f}] | {v['n']} |"
                 for k, v in out["paired_ndcg@20"].items()]
    for name, v in out["variants"].items():
        if v["codebooks"]:
            rows += ["", f"Codebooks of `{name}` (final assignment):", "",
                     "| codebook | codes | usage | perplexity |", "|---|---|---|---|"]
            rows += [f"| {k} | {c['codes']} | {c['usage']:.1%} | {c['perplexity']:.1f} |"
                     for k, c in v["codebooks"].items()]
            if name != "tokens":
                break  # the full model and one more are enough for the table
    if "cold_start" in out:
        c = out["cold_start"]
        a, f = c["ranking_assigned_tokens_retrained_model"], c["ranking_learned_tokens_full_model"]
        rows += ["", f"Cold start: {c['users']} users held out of training ({c['target_edges']} test edges)", "",
                 "| tokens of the held-out users | HR@10 | NDCG@10 | HR@20 | NDCG@20 |", "|---|---|---|---|---|",
                 "| assigned from interactions (model trained without them) | "
                 + " | ".join(f"{a[k]:.4f}" for k in METRICS) + " |",
                 "| learned (full model) | " + " | ".join(f"{f[k]:.4f}" for k in METRICS) + " |", ""]
        d = c["assigned_minus_learned"]["ndcg@10"]
        rows.append(f"assigned - learned NDCG@10: {d['mean_diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
        rows += ["", "| position | re-assigned code = learned code | chance |", "|---|---|---|"]
        rows += [f"| {p} | {c['reassignment_match_share'][p]:.1%} | {c['chance_match_share'][p]:.1%} |"
                 for p in c["reassignment_match_share"]]
    cov = out["variants"].get("tokens", next(iter(out["variants"].values())))["text_coverage"]
    rows += ["", "Text coverage (training pairs whose edge is in the training graph): "
             + ", ".join(f"{k} {v}" for k, v in cov.items())]
    return "\n".join(rows)


def plot(work: Path, runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in runs:
        log = [json.loads(x) for x in (work / name / "metrics.jsonl").read_text().splitlines()]
        pts = [(x["epoch"], x["valid_hr@20"]) for x in log if "valid_hr@20" in x]
        ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("valid HR@20 (held-out edges)")
    ax.set_title("Behaviour tokenizer on XRec Yelp")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

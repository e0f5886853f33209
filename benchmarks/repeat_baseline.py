"""Training-free references for the multi-behaviour tables: the user's own recent items; popularity.

On logs where a buy usually follows a click or cart of the same item (the Alibaba sample: 97% of
held-out buys), "which of my recent items will I buy" is most of the task. This ranks every item by
how recently it appears in the user's input window (``llmrec.eval.baselines.RecentItems``: the same
last ``max_len`` training events the models see, any behaviour), items outside the window by
training popularity below them; and popularity alone. Both are scored by llmrec's own evaluator (same
full ranking, same mask: the user's training target-behaviour items). With an ablation folder, each
of its models (per-user means over seeds, as in its table) is compared with both by a paired
bootstrap over users.

    python benchmarks/repeat_baseline.py configs/ablations/alibaba-mb.yaml --runs runs/alibaba-mb --name repeat_alibaba

Writes results/<name>.{json,md}; also the share of held-out target items the user already had in
training (any behaviour).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec.atomic import write_text  # noqa: E402


def main() -> None:
    from llmrec.config import EvalConfig
    from llmrec.data.prepare import TEST, prepare, train_counts
    from llmrec.data.sequences import EvalExamples
    from llmrec.data.stats import held_out_seen
    from llmrec.eval.baselines import RecentItems
    from llmrec.eval.bootstrap import paired_bootstrap
    from llmrec.eval.ranking import evaluate
    from llmrec.experiments.ablate import load_ablation, run_config

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", help="an ablation config (its data section and metrics are used)")
    p.add_argument("--runs", help="that ablation's finished --out folder, to compare its models")
    p.add_argument("--name", required=True)
    p.add_argument("--set", nargs="*", default=[], help="overrides of the ablation config (key=value)")
    args = p.parse_args()

    ab = load_ablation(args.config, args.set)
    cfg = run_config(ab, next(iter(ab["backbones"])), next(iter(ab["variants"])), ab["seeds"][0], Path("unused"))
    data = prepare(cfg.data)
    examples = EvalExamples.build(data, TEST, cfg.data.max_len)
    pop = train_counts(data)
    refs = {name: evaluate(RecentItems(pop, window=window), examples, EvalConfig(ks=list(cfg.eval.ks)),
                           n_items=data.n_items, popularity=pop)
            for name, window in REFERENCES.items()}
    metrics = [m for m in ab["metrics"] if m in refs[next(iter(refs))].per_user]
    report = {"config": args.config, "overrides": args.set, "dataset": data.name,
              "test_users": len(examples.users), "held_out_seen_in_training": held_out_seen(data)["test"],
              "has_timestamp": bool(data.meta.get("has_timestamp")), "window": cfg.data.max_len,
              "references": {name: {m: r.metrics[m] for m in metrics} for name, r in refs.items()},
              "models": {}, "not_run": []}
    if args.runs:
        users = refs[next(iter(refs))].users
        order = {u: i for i, u in enumerate(users.tolist())}
        for backbone in ab["backbones"]:
            for variant in ab["variants"]:
                files = [Path(args.runs) / backbone / variant / f"seed{s}" / "test_per_user.npz" for s in ab["seeds"]]
                if not all(f.exists() for f in files):
                    report["not_run"].append(f"{backbone}/{variant}")
                    continue
                per = [np.load(f) for f in files]
                if any(set(x["users"].tolist()) != set(order) for x in per) or \
                        any(not np.array_equal(per[0]["users"], x["users"]) for x in per):
                    raise SystemExit(f"{args.runs}/{backbone}/{variant}: its test users differ from this data's")
                idx = np.array([order[u] for u in per[0]["users"].tolist()])
                row = {}
                for m in metrics:
                    model = np.mean([x[m] for x in per], axis=0)
                    row[m] = {"mean": float(model.mean()),
                              "vs": {name: paired_bootstrap(r.per_user[m][idx], model) for name, r in refs.items()}}
                name = backbone + ("" if len(ab["variants"]) == 1 else f": {variant}")
                report["models"][name] = row
    out = HERE / "results" / args.name
    write_text(out.with_suffix(".json"), json.dumps(report, indent=1))
    write_text(out.with_suffix(".md"), markdown(report, metrics))
    print(markdown(report, metrics))


REFERENCES = {"recent items, then popular": True, "most popular": False}


def markdown(r: dict, metrics: list[str]) -> str:
    # reports written before the has_timestamp key existed came from timed logs: no note
    untimed = [] if r.get("has_timestamp", True) else [
        "", f"This source has no timestamps: its \"recent items\" are the user's last {r['window']} "
        "training events in file order, not in time (the dataset's page says what that order is)."]
    lines = [f"Training-free rankings on {r['dataset']} test ({r['test_users']:,} users, full ranking): "
             f"{r['held_out_seen_in_training']:.1%} of held-out items were already among the user's training events.",
             *untimed, "", "| ranking | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for name, vals in r["references"].items():
        lines.append(f"| {name} (no training) | " + " | ".join(f"{vals[m]:.4f}" for m in metrics) + " |")
    for name, row in r["models"].items():
        lines.append(f"| {name} (mean of seeds) | " + " | ".join(f"{row[m]['mean']:.4f}" for m in metrics) + " |")
    for ref in r["references"]:
        if r["models"]:
            lines += ["", f"Each model minus **{ref}**, paired bootstrap 95% interval over users:", "",
                      "| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
            for name, row in r["models"].items():
                lines.append(f"| {name} | " + " | ".join(
                    "{mean_diff:+.4f} [{ci_low:+.4f}, {ci_high:+.4f}]".format(**row[m]["vs"][ref]) for m in metrics) + " |")
    if r["not_run"]:
        lines += ["", "Not compared (a seed's run folder is missing): " + ", ".join(r["not_run"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

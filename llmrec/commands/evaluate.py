"""``llmrec eval``: evaluate a checkpoint on its own dataset's valid or test split, or
``llmrec eval explanations -c configs/alignment/yelp.yaml --out runs/alignment-yelp``: the stage-2
comparison of explanation methods (train, generate, score; resumable), or
``llmrec eval seeds --runs A,B,C --reference constant --out DIR``: several seeds of such a sweep pooled."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="best.safetensors or last.safetensors of a run folder, `explanations` or `seeds`")
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--mode", choices=["full", "sampled"], default="full",
                        help="sampled: target vs --negatives sampled items (labelled as such)")
    parser.add_argument("--negatives", type=int, default=100)
    parser.add_argument("--sampler", choices=["uniform", "popularity"], default="uniform")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--config", "-c", help="explanations: stage-2 YAML config")
    parser.add_argument("--out", "-o", help="explanations: sweep folder (default runs/explanations)")
    parser.add_argument("--only", help="explanations: comma-separated variant names to run now")
    parser.add_argument("--score-only", action="store_true", help="explanations: score what is generated")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="explanations: generation backend")
    parser.add_argument("--reference", default="beat",
                        help="explanations: the variant whose differences to every other one are reported")
    parser.add_argument("--runs", help="seeds: comma-separated scored sweep folders, one per seed")
    parser.add_argument("--splits", default="test", help="seeds: comma-separated splits (default test)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="explanations: dotted config overrides")


def explanations(args: argparse.Namespace) -> int:
    from llmrec.experiments.compare import DEFAULT_VARIANTS, generate_all, score_all
    from llmrec.alignment.config import load_align_config
    from llmrec.errors import ConfigError

    cfg = load_align_config(args.config, list(args.overrides))
    cfg.check()
    names = list(cfg.variants or DEFAULT_VARIANTS)
    if args.reference not in names:
        raise ConfigError(f"--reference {args.reference!r} is not a variant of this sweep ({', '.join(names)})")
    only = args.only.split(",") if args.only else None
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ConfigError(f"--only: {', '.join(unknown)} not a variant of this sweep ({', '.join(names)})")
    out = args.out or "runs/explanations"
    if not args.score_only:
        generate_all(cfg, out, only=only, backend_kind=args.backend)
    result = score_all(cfg, out, reference=args.reference)
    print((__import__("pathlib").Path(out) / "results.md").read_text())
    if result["missing"]:
        print(f"not yet generated (rerun to continue): {', '.join(result['missing'])}")
    return 0


def seeds(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llmrec.experiments import seeds as pooled
    from llmrec.experiments.compare import LABELS
    from llmrec.errors import ConfigError

    runs = [Path(r) for r in (args.runs or "").split(",") if r]
    if len(runs) < 2:
        raise ConfigError("--runs: give at least two scored sweep folders, comma-separated")
    for r in runs:
        if not r.is_dir():
            raise ConfigError(f"--runs: {r} is not a folder")
    only = args.only.split(",") if args.only else None
    blocks = [pooled.pool(runs, split, args.reference, methods=only) for split in args.splits.split(",")]
    out = Path(args.out or "runs/seeds")
    pooled.save(blocks, out, LABELS, f"{len(runs)} seeds pooled")
    print((out / "seeds.md").read_text())
    return 0


def main(args: argparse.Namespace) -> int:
    if args.checkpoint == "explanations":
        return explanations(args)
    if args.checkpoint == "seeds":
        return seeds(args)
    if args.overrides:
        from llmrec.errors import ConfigError

        raise ConfigError(f"unexpected arguments {args.overrides} (overrides belong to `llmrec eval explanations`)")
    from llmrec.commands.common import print_json
    from llmrec.config import EvalConfig
    from llmrec.eval.ranking import evaluate
    from llmrec.train.checkpoint import load_for_eval
    from llmrec.train.run import metrics_table

    model, _, cfg, data, examples, popularity = load_for_eval(args.checkpoint, args.split)
    ecfg = EvalConfig(ks=cfg.eval.ks, mode=args.mode, n_negatives=args.negatives, sampler=args.sampler)
    result = evaluate(model, examples, ecfg, n_items=data.n_items, popularity=popularity, progress=True)
    label = "full ranking" if args.mode == "full" else f"SAMPLED ({args.negatives} {args.sampler} negatives)"
    if args.json:
        print_json({"split": args.split, "mode": label, "metrics": result.metrics})
    else:
        print(metrics_table(result.metrics, ecfg.ks, title=f"### {data.name} {args.split}, {label}"))
    return 0

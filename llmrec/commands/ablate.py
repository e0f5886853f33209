"""``llmrec ablate``: backbones x variants x seeds, one resumable run, one table with paired intervals.

  llmrec ablate -c configs/ablations/eimf-ml100k.yaml --out runs/ablate-ml100k
  llmrec ablate -c configs/ablations/eimf-ml100k.yaml --backbones ibim --seeds 0 --variants plain,align,predict,esim
  llmrec ablate -c configs/ablations/blade-ablation.yaml --out runs/blade-ablation   # named config overrides
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="ablation YAML (configs/ablations/*.yaml): a run "
                                               "config plus backbones / seeds / variants [/ baseline / metrics]")
    parser.add_argument("--out", "-o", default="runs/ablate", help="folder of the runs and results.{json,md,png}")
    parser.add_argument("--backbones", nargs="+", help="subset of the config's backbones (or registered names, "
                                                      "default sections); space- or comma-separated")
    parser.add_argument("--seeds", nargs="+", type=int, help="override the config's seeds")
    parser.add_argument("--variants", help="comma-separated: plain, esim (both terms), align, predict, "
                                                 "or names of the config's own variants")
    parser.add_argument("--semantic", "-s", metavar="PATH", help="shortcut for semantic.interests=PATH")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides of the run config")


def main(args: argparse.Namespace) -> int:
    from llmrec.experiments.ablate import load_ablation, run_ablation

    overrides = list(args.overrides)
    if args.semantic:
        overrides.append(f"semantic.interests={args.semantic}")
    ab = load_ablation(args.config, overrides, backbones=args.backbones, seeds=args.seeds,
                       variants=args.variants.split(",") if args.variants else None)
    report = run_ablation(ab, args.out, progress=not args.no_progress)
    from pathlib import Path

    print((Path(args.out) / "results.md").read_text())
    print(f"runs and results.{{json,md,png}} in {args.out}")
    return 0 if report["rows"] else 1

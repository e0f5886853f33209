"""``llmrec demo``: the embedded default job, MovieLens-100k -> SASRec -> full-ranking metrics."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=15.0, help="cap on training time")
    parser.add_argument("--out", default="runs/demo", help="run folder")
    parser.add_argument("--fresh", action="store_true", help="do not resume an earlier demo run")


def main(args: argparse.Namespace) -> int:
    from llmrec.config import load_config
    from llmrec.train.run import run
    from pathlib import Path

    cfg = load_config(None, [f"train.out_dir={args.out}", f"train.time_budget_s={args.minutes * 60}",
                             f"train.resume={'false' if args.fresh else 'true'}"])
    print(f"llmrec demo: MovieLens-100k (embedded, from the recbole wheel) -> SASRec "
          f"(CE loss, 2 layers, hidden 64) -> leave-one-out full ranking; cap {args.minutes:g} min")
    out = run(cfg)
    print()
    print((Path(args.out) / "results.md").read_text())
    print(f"{out['epochs']} epochs, best epoch {out['best_epoch']} ({out['stopped_by']}); "
          f"training {out['train_seconds']:.0f} s; test evaluation {out['test_eval_seconds']:.2f} s "
          f"for {len(out['test_users'])} users x {out['items']} items")
    return 0

"""``llmrec train``: train a registry backbone, early-stop on validation, report test metrics."""

from __future__ import annotations

import argparse

from llmrec.commands.common import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", "-b", help="shortcut for backbone.name=...")
    parser.add_argument("--out", "-o", help="shortcut for train.out_dir=...")
    parser.add_argument("--semantic", "-s", metavar="PATH",
                        help="ESIM interests (an `llmrec interests extract` folder): "
                             "shortcut for semantic.interests=PATH")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from llmrec.train.run import run

    extra = []
    if args.backbone:
        extra.append(f"backbone.name={args.backbone}")
    if args.out:
        extra.append(f"train.out_dir={args.out}")
    if args.semantic:
        extra.append(f"semantic.interests={args.semantic}")
    cfg = config_from_args(args, extra)
    out = run(cfg)
    import os
    from pathlib import Path

    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun/accelerate only the main process writes (and prints) the results
    print((Path(cfg.train.out_dir) / "results.md").read_text())
    print(f"best epoch {out['best_epoch']} of {out['epochs']} ({out['stopped_by']}), "
          f"{out['train_seconds']:.1f} s training; run folder {cfg.train.out_dir}")
    return 0

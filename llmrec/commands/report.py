"""``llmrec report RUN_DIR``: a Markdown page (tables + PNG plots) for a run or ablation folder."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a training run folder (train.out_dir) or an `llmrec ablate --out` folder")


def main(args: argparse.Namespace) -> int:
    from llmrec.experiments.report import report

    out = report(args.folder)
    print(f"wrote {out}")
    return 0

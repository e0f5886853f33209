"""``llmrec align train|teacher``: BEAT stage 2 from the command line.

  llmrec align train -c configs/alignment/yelp.yaml model.variant=beat
  llmrec align teacher -c configs/alignment/ml100k.yaml --limit 200
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["train", "teacher"])
    parser.add_argument("--config", "-c", help="stage-2 YAML config")
    parser.add_argument("--out", "-o", help="train: shortcut for train.out_dir=...")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="teacher: LLM backend")
    parser.add_argument("--model", "-m", help="teacher: LLM (default: the best installed catalogue model)")
    parser.add_argument("--output", help="teacher: references JSONL (default: the config's `references`)")
    parser.add_argument("--limit", type=int, help="teacher: only the first N pairs")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")


def main(args: argparse.Namespace) -> int:
    import json

    from llmrec.alignment.config import load_align_config

    overrides = list(args.overrides) + ([f"train.out_dir={args.out}"] if args.out else [])
    cfg = load_align_config(args.config, overrides)
    if args.action == "train":
        from llmrec.alignment.train import fit, setup

        summary = fit(setup(cfg))
        print(json.dumps(summary, indent=1))
        print(f"run folder {cfg.train.out_dir} (final.safetensors); explain with "
              f"`llmrec explain --run {cfg.train.out_dir} --user U --item I`")
        return 0
    from llmrec.alignment.teacher import run_teacher

    summary = run_teacher(cfg, model=args.model, backend=args.backend, output=args.output, limit=args.limit)
    print(json.dumps(summary, indent=1))
    return 0

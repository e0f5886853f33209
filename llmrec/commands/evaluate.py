"""``llmrec eval``: evaluate a checkpoint on its own dataset's valid or test split."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="best.pt or last.pt of a run folder")
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--mode", choices=["full", "sampled"], default="full",
                        help="sampled: target vs --negatives sampled items (labelled as such)")
    parser.add_argument("--negatives", type=int, default=100)
    parser.add_argument("--sampler", choices=["uniform", "popularity"], default="uniform")
    parser.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from llmrec.commands.common import print_json
    from llmrec.config import EvalConfig, RunConfig, from_dict
    from llmrec.data.prepare import TEST, TRAIN, VALID, prepare
    from llmrec.data.sequences import EvalExamples
    from llmrec.errors import ConfigError
    from llmrec.eval.ranking import evaluate
    from llmrec.train.checkpoint import load_model
    from llmrec.train.run import metrics_table
    from pathlib import Path

    if not Path(args.checkpoint).exists():
        raise ConfigError(f"checkpoint {args.checkpoint} does not exist")
    model, ckpt = load_model(args.checkpoint)
    cfg: RunConfig = from_dict(RunConfig, ckpt["run_config"])
    data = prepare(cfg.data)
    if data.item_vocab != ckpt["item_vocab"]:
        raise ConfigError(f"{args.checkpoint}: the dataset's item vocabulary differs from the one "
                          "the model was trained on (source files changed?)")
    examples = EvalExamples.build(data, TEST if args.split == "test" else VALID, cfg.data.max_len)
    ecfg = EvalConfig(ks=cfg.eval.ks, mode=args.mode, n_negatives=args.negatives, sampler=args.sampler)
    popularity = np.bincount(data.item[data.split == TRAIN], minlength=data.n_items + 1).astype(float)
    result = evaluate(model, examples, ecfg, n_items=data.n_items, popularity=popularity, progress=True)
    label = "full ranking" if args.mode == "full" else f"SAMPLED ({args.negatives} {args.sampler} negatives)"
    if args.json:
        print_json({"split": args.split, "mode": label, "metrics": result.metrics})
    else:
        print(metrics_table(result.metrics, ecfg.ks, title=f"### {data.name} {args.split}, {label}"))
    return 0

"""``llmrec compare-llms``: train the stage-2 projection on each LLM and compare side by side.

  llmrec compare-llms -c configs/alignment/yelp.yaml --models smollm2-135m,qwen2.5-coder-0.5b --out runs/llms
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, help="comma-separated catalogue names or HF folders")
    parser.add_argument("--config", "-c", help="stage-2 YAML config")
    parser.add_argument("--out", "-o", default="runs/compare-llms", help="sweep folder (one sub-folder per LLM)")
    parser.add_argument("--variants", default="title,constant,beat",
                        help="comma-separated methods to run per LLM (names of `llmrec eval explanations`)")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llmrec.experiments.compare import compare_llms
    from llmrec.alignment.config import load_align_config

    cfg = load_align_config(args.config, list(args.overrides))
    cfg.check()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    from llmrec.llm.catalog import require_installed

    for m in models:
        require_installed(m, key="--models")
    compare_llms(cfg, models, args.out, variants=[v.strip() for v in args.variants.split(",") if v.strip()],
                 backend_kind=args.backend)
    print((Path(args.out) / "compare_llms.md").read_text())
    return 0

"""``llmrec demo``: the embedded pipeline (llmrec/pipeline/demo.yaml) on MovieLens-100k: three users'
top-5 recommendations, each with its explanation and evidence, their ESIM interests, the metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "pipeline" / "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run folder (a second run reuses every finished step)")
    parser.add_argument("--fresh", action="store_true", help="delete the run folder first")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides of the demo config")


def main(args: argparse.Namespace) -> int:
    import shutil

    from llmrec.commands.pipeline import summary_text
    from llmrec.pipeline import load_pipeline_config, run_pipeline

    cfg = load_pipeline_config(DEMO, [f"out_dir={args.out}", *args.overrides])
    if args.fresh and Path(args.out).exists():
        shutil.rmtree(args.out)
    from llmrec.pipeline.steps import steps

    print(f"llmrec demo: MovieLens-100k (embedded); steps {' -> '.join(s.name for s in steps(cfg))}; "
          f"backbone {cfg.backbone['name']}, ESIM with {cfg.interests['extract']['llm']}, explanations by "
          f"{cfg.align['model']['variant']} for {cfg.explain.users} users; config {DEMO}", flush=True)
    report = run_pipeline(cfg)
    print()
    print(summary_text(report, cfg.out_dir, users=3))
    return 0

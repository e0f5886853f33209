"""``llmrec pipeline -c configs/pipeline/<name>.yaml``: every stage, each step cached and resumable."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="pipeline YAML (kind: pipeline)")
    parser.add_argument("--out", help="shortcut for out_dir=...")
    parser.add_argument("--check", action="store_true",
                        help="resolve every step's config and print the step keys and cache state; run nothing")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. explain.users=5 align.train.epochs=2")


def main(args: argparse.Namespace) -> int:
    from llmrec.pipeline import load_pipeline_config, run_pipeline

    overrides = list(args.overrides) + ([f"out_dir={args.out}"] if args.out else [])
    cfg = load_pipeline_config(args.config, overrides)
    if args.check:
        from llmrec.pipeline.run import plan

        for row in plan(cfg):
            print(f"{row['step']:<17} {row['key']}  {row['state']}")
        return 0
    report = run_pipeline(cfg)
    print(summary_text(report, cfg.out_dir))
    return 0


def summary_text(report: dict, out_dir: str, users: int | None = None) -> str:
    """What a terminal shows at the end: per user the recommendations with explanation and evidence,
    the ESIM interests, then the metrics and the step cache use."""
    from llmrec.pipeline.report import _md_table, checks_table, interest_label, ranking_table

    lines = []
    for u in report["users"][:users]:
        lines += [f"== user {u['user']}", f"   ESIM interests ({interest_label(u)}): "
                  + (", ".join(u["interests"]) or "none")]
        for r in u["recommendations"]:
            lines += [f"   {r['rank']}. {r['title']}  (item {r['item']})",
                      f"      why: {r['explanation']}",
                      "      evidence: " + r["evidence"]["text"].replace("\n", " | ")]
        lines.append("")
    lines += [_md_table(ranking_table(report["ranking"], compact=True)), "", _md_table(checks_table(report["explanations"])), ""]
    steps = report.get("steps", {})
    lines.append("steps: " + ", ".join(f"{n} {s['cache']} ({s['seconds']:.0f} s)" for n, s in steps.items()))
    lines.append(f"report: {out_dir}/report.md, {out_dir}/report.html, {out_dir}/report.json")
    return "\n".join(lines)

"""``llmrec data prepare|stats``."""

from __future__ import annotations

import argparse

from llmrec.commands.common import add_config_arguments, config_from_args, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["prepare", "stats"])
    parser.add_argument("--json", action="store_true", help="print statistics as JSON")
    parser.add_argument("--on-bad-rows", choices=["error", "skip"],
                        help="skip: drop malformed rows, count and report them")
    parser.add_argument("--no-cache", action="store_true", help="ignore the processed-dataset cache")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from llmrec.data.prepare import cache_folder, prepare
    from llmrec.data.stats import dataset_stats, stats_markdown

    extra = [f"data.on_bad_rows={args.on_bad_rows}"] if args.on_bad_rows else []
    cfg = config_from_args(args, extra)
    data = prepare(cfg.data, use_cache=not args.no_cache)
    stats = dataset_stats(data)
    if args.action == "prepare":
        folder = cache_folder(cfg.data)
        print(f"prepared {data.name}: {data.n_users:,} users, {data.n_items:,} items, "
              f"{len(data.item):,} interactions -> {folder}")
        if stats["dropped_rows"]:
            print("dropped rows: " + ", ".join(f"{k}: {v}" for k, v in stats["dropped_rows"].items()))
        return 0
    print_json(stats) if args.json else print(stats_markdown(stats))
    return 0

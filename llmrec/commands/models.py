"""``llmrec models list|prepare NAME|info NAME``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "prepare", "info"])
    parser.add_argument("name", nargs="?", help="catalogue name or local HF folder")


def main(args: argparse.Namespace) -> int:
    import json
    import time

    from llmrec.errors import ConfigError
    from llmrec.llm.catalog import CATALOG, DEFAULT_MODEL, info, resolve

    if args.action == "list":
        print("| name | kind | installed | prepared | description |\n|---|---|---|---|---|")
        for name in CATALOG:
            i = info(name)
            default = " (default)" if name == DEFAULT_MODEL else ""
            print(f"| {name}{default} | {i['kind']} | {'yes' if i['installed'] else 'no: ' + i['install']} | "
                  f"{'yes' if i.get('prepared') else 'no'} | {i['description']} |")
        return 0
    if not args.name:
        raise ConfigError(f"llmrec models {args.action} needs a model name")
    if args.action == "info":
        print(json.dumps(info(args.name), indent=1))
        return 0
    t0 = time.perf_counter()
    path = resolve(args.name)
    print(f"{args.name}: ready at {path} ({time.perf_counter() - t0:.1f} s)")
    return 0

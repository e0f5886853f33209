"""``llmrec checkpoint convert PATH [PATH ...]``: old pickle checkpoints -> safetensors.

Files are read with ``torch.load(weights_only=True)`` and a numpy-array allowlist: nothing is executed,
and a file that asks for anything else is refused.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["convert"])
    parser.add_argument("paths", nargs="+", help="legacy *.pt checkpoints, or run folders holding them")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llmrec.legacy_convert import convert

    files: list[Path] = []
    for p in map(Path, args.paths):
        files += sorted(p.glob("*.pt")) if p.is_dir() else [p]
    for f in files:
        print(f"{f} -> {convert(f)}")
    return 0

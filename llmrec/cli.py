"""``llmrec`` command line: one table of subcommands, each imported only when it runs.

Errors llmrec raises on purpose (bad config, malformed data) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module with add_arguments(parser) and main(args), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("llmrec.commands.data", "prepare a dataset or print its statistics"),
    "train": ("llmrec.commands.train", "train a backbone and evaluate it on the test split"),
    "ablate": ("llmrec.commands.ablate", "backbones x variants (ESIM on/off or config overrides) x seeds, one table"),
    "eval": ("llmrec.commands.evaluate", "evaluate a checkpoint (ranking), or `eval explanations` (stage-2 comparison)"),
    "pipeline": ("llmrec.commands.pipeline", "the whole system in one cached, resumable run: backbone, stage 1, ESIM, "
                                             "signals, stage 2, explained recommendations, report"),
    "demo": ("llmrec.commands.demo", "the embedded pipeline on MovieLens-100k: explained recommendations for 3 users"),
    "models": ("llmrec.commands.models", "list, prepare or describe the offline LLM catalogue"),
    "generate": ("llmrec.commands.generate", "generate text with a catalogue LLM (one prompt or a JSONL batch)"),
    "tokenizer": ("llmrec.commands.tokenizer", "BEAT stage 1: train behaviour tokens, extract intentions, inspect, assign"),
    "align": ("llmrec.commands.align", "BEAT stage 2: train the projection into a frozen LLM; teacher pass"),
    "explain": ("llmrec.commands.explain", "explain recommendations with a trained stage-2 run (one pair or a file)"),
    "interests": ("llmrec.commands.interests", "ESIM: cluster users, extract semantic interests of representatives, propagate"),
    "compare-llms": ("llmrec.commands.compare_llms", "train stage 2 on several LLMs and compare them side by side"),
    "serve": ("llmrec.commands.serve", "serve recommendations (no LLM) and explanations over HTTP (FastAPI)"),
    "checkpoint": ("llmrec.commands.checkpoint", "convert old pickle checkpoints (*.pt) to safetensors (tensors and numpy arrays only; runs nothing)"),
    "report": ("llmrec.commands.report", "a Markdown report with tables and PNG plots for a run or ablation folder"),
}


def _top_help() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: llmrec <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `llmrec <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0
    if argv[0] == "--version":
        from llmrec import __version__

        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"llmrec: unknown command {name!r}\n\n{_top_help()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"llmrec {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_intermixed_args(argv[1:])
    from llmrec.errors import LLMRecError

    # one INFO channel for what a user should see without a terminal: dtype choices, progress lines
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("llmrec").setLevel(logging.INFO)
    try:
        return int(module.main(args) or 0)
    except LLMRecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

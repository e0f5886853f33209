"""``llmrec explain``: explanations from a trained stage-2 run, for one pair or a pairs file.

  llmrec explain --run runs/alignment-yelp/beat --user 4991 --item 11821
  llmrec explain --run runs/alignment-yelp/beat --pairs pairs.jsonl --output explanations.jsonl
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="stage-2 run folder (holds final.safetensors)")
    parser.add_argument("--user", help="user id (the dataset's own)")
    parser.add_argument("--item", help="item id (the dataset's own)")
    parser.add_argument("--pairs", help="JSONL (user, item per line) or CSV/TSV with a user,item header")
    parser.add_argument("--output", help="with --pairs: JSONL output (resumable); default <pairs>.explained.jsonl")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from llmrec.alignment.explain import explain_rows, read_pairs_file, rows_from
    from llmrec.alignment.train import load_run
    from llmrec.errors import ConfigError

    if bool(args.pairs) == bool(args.user or args.item):
        raise ConfigError("explain needs either --user and --item, or --pairs")
    if not args.pairs and not (args.user and args.item):
        raise ConfigError("explain needs both --user and --item")
    wanted = read_pairs_file(args.pairs) if args.pairs else [(args.user, args.item)]
    found = []  # ids are checked against the stage-1 vocabulary before the LLM loads

    def check_ids(tokenizer, pairs) -> None:
        found.append(rows_from(tokenizer, pairs, wanted, source=args.pairs or "argument"))

    s = load_run(args.run, backend_kind=args.backend, before_llm=check_ids)
    rows = found[0]
    if args.pairs:
        output = Path(args.output or Path(args.pairs).with_suffix(".explained.jsonl"))
    else:
        output = Path(args.run) / "explain_cli" / f"{args.user}_{args.item}.jsonl"
        if output.exists():  # one-off: always generate afresh
            for p in output.parent.glob(output.name + "*"):
                p.unlink()
    out = explain_rows(s, rows, output, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                       progress=bool(args.pairs))
    if args.pairs:
        print(f"{len(out)} explanations -> {output}")
    else:
        r = out.iloc[0]
        print(json.dumps({"user": args.user, "item": args.item, "title": rows.iloc[0]["title"],
                          "explanation": r["text"], "evidence": r.get("evidence"), "ms": r["ms"],
                          "prompt_tokens": int(r["prompt_tokens"])}, indent=1))
    return 0

"""``llmrec tokenizer train|extract|inspect|assign``: BEAT stage 1 from the command line.

  llmrec tokenizer train -c configs/tokenizer/ml100k.yaml train.epochs=5
  llmrec tokenizer extract -c configs/tokenizer/yelp.yaml --output runs/yelp/intention_job.jsonl
  llmrec tokenizer inspect --run runs/tokenizer-ml100k --item 50
  llmrec tokenizer assign --run runs/tokenizer-ml100k --user new1 --items 1,50,181
  llmrec tokenizer assign --run runs/tokenizer-ml100k --item new9 --text "a space opera"
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["train", "extract", "inspect", "assign"])
    parser.add_argument("--config", "-c", help="stage-1 YAML config (train, extract)")
    parser.add_argument("--out", "-o", help="shortcut for train.out_dir=... (train)")
    parser.add_argument("--run", help="a trained tokenizer's folder (inspect, assign)")
    parser.add_argument("--user", help="user id (inspect: a known one; assign: a new one)")
    parser.add_argument("--item", help="item id (inspect: a known one; assign: a new one)")
    parser.add_argument("--items", help="assign --user: comma-separated known item ids it interacted with")
    parser.add_argument("--users", help="assign --item: comma-separated known user ids that interacted with it")
    parser.add_argument("--text", help="assign: text about the new entity (when it has no interactions)")
    parser.add_argument("--top", type=int, default=5, help="inspect: neighbours and phrases per token")
    parser.add_argument("--model", "-m", default="smollm2-135m", help="extract: LLM (catalogue name or folder)")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="extract: LLM backend")
    parser.add_argument("--output", help="extract: JSONL job output (resumable); default <out_dir>/intention_job.jsonl")
    parser.add_argument("--batch-size", type=int, default=16, help="extract: texts per LLM batch")
    parser.add_argument("--limit", type=int, help="extract: only the first N training texts")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")


def _side(args: argparse.Namespace) -> tuple[str, str]:
    from llmrec.errors import ConfigError

    if bool(args.user) == bool(args.item):
        raise ConfigError(f"tokenizer {args.action} needs exactly one of --user or --item")
    return ("user", args.user) if args.user else ("item", args.item)


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from llmrec.errors import ConfigError
    from llmrec.tokenizer.config import load_tokenizer_config

    if args.action in ("train", "extract"):
        overrides = list(args.overrides) + ([f"train.out_dir={args.out}"] if args.out else [])
        cfg = load_tokenizer_config(args.config, overrides)
        if args.action == "train":
            from llmrec.tokenizer.train import run

            result = run(cfg)
            print((Path(cfg.train.out_dir) / "results.md").read_text())
            print(f"run folder {cfg.train.out_dir}; text coverage {json.dumps(result['text_coverage'])}")
            return 0
        from llmrec.data.prepare import prepare
        from llmrec.llm.factory import load_backend
        from llmrec.tokenizer.texts import extract_intentions, training_pairs

        pairs = training_pairs(prepare(cfg.data), cfg.semantic.pair_text)
        if args.limit:
            pairs = pairs.iloc[: args.limit]
        if not len(pairs):
            raise ConfigError(f"{cfg.data.name or cfg.data.source} has no training texts to extract intentions from")
        output = args.output or cfg.semantic.intentions or str(Path(cfg.train.out_dir) / "intention_job.jsonl")
        llm = load_backend(args.model, backend=args.backend, batch_size=args.batch_size)
        s = extract_intentions(pairs, llm, output, batch_size=args.batch_size)
        print(f"{s.texts} training texts, {s.calls} LLM calls, {s.fallbacks} fallbacks, model {s.model}, "
              f"prompt {s.prompt_hash}, resumed from batch {s.resumed_from_batch}, {s.seconds:.1f} s -> {output}")
        return 0
    if not args.run:
        raise ConfigError(f"tokenizer {args.action} needs --run <tokenizer run folder>")
    from llmrec.tokenizer.artifacts import TrainedTokenizer

    tok = TrainedTokenizer(args.run)
    side, raw = _side(args)
    if args.action == "inspect":
        print(json.dumps(tok.inspect(side, raw, top=args.top), indent=1))
        return 0
    if raw in tok.index[side]:
        raise ConfigError(f"{side} {raw!r} is already known to {args.run}; inspect shows its tokens")
    links = args.items if side == "user" else args.users
    if links:
        other = "item" if side == "user" else "user"
        ids = [tok.dense_id(other, x.strip()) for x in links.split(",") if x.strip()]
        out = tok.assign_from_interactions(side, ids)
        result = {"side": side, "id": raw, "from": f"{len(ids)} interactions", "codes": out["codes"]}
    elif args.text:
        out = tok.assign_from_text(side, args.text, k=args.top)
        result = {"side": side, "id": raw, "from": "text", "codes": out["codes"], "neighbours": out["neighbours"]}
    else:
        raise ConfigError(f"assign --{side} needs --{'items' if side == 'user' else 'users'} or --text")
    result["positions"] = tok.token_names()
    print(json.dumps(result, indent=1))
    return 0

"""``llmrec generate``: one prompt, or a JSONL batch on the resumable job runner."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default="smollm2-135m", help="catalogue name, HF folder or hub id")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--prompt", "-p", help="one prompt (printed answer)")
    parser.add_argument("--system", help="system message")
    parser.add_argument("--input", "-i", help='JSONL of {"id": ..., "prompt": ...} records')
    parser.add_argument("--output", "-o", help="JSONL output for --input (resumable)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def main(args: argparse.Namespace) -> int:
    import hashlib

    from llmrec.errors import ConfigError
    from llmrec.llm.backend import GenerationParams
    from llmrec.llm.factory import load_backend

    if bool(args.prompt) == bool(args.input):
        raise ConfigError("give either --prompt or --input")
    if args.input and not args.output:
        raise ConfigError("--input needs --output")
    params = GenerationParams(max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                              seed=args.seed, stop=args.stop)
    if args.prompt:
        llm = load_backend(args.model, backend=args.backend, system=args.system)
        print(llm.generate([args.prompt], params)[0].text)
        return 0
    from llmrec.data.io import read_jsonl
    from llmrec.llm.jobs import JobRunner

    table = read_jsonl(args.input, required=["id", "prompt"])
    records = [{"id": r["id"], "prompt": r["prompt"]} for r in table.to_dict("records")]
    llm = load_backend(args.model, backend=args.backend, batch_size=args.batch_size, system=args.system)
    prompt_hash = hashlib.sha256(f"{args.system}|{params}".encode()).hexdigest()[:12]
    runner = JobRunner(args.output, model=args.model, prompt_hash=prompt_hash, batch_size=args.batch_size,
                       desc="generate")
    summary = runner.run(records, lambda batch: [g.text for g in llm.generate([r["prompt"] for r in batch], params)])
    print(f"{summary.records} records, {summary.calls} LLM calls, resumed from batch "
          f"{summary.resumed_from_batch}, {summary.seconds:.1f} s -> {args.output}")
    return 0

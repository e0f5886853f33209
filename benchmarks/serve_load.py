"""Load test of ``POST /v1/explain``: N concurrent clients on loopback against `llmrec serve`,
micro-batching on vs off, in one run.

Two real servers (``llmrec serve --explain RUN``, one with ``--no-batching``) run as child
processes, each with its own copy of the LLM; they are measured in alternating rounds (off, on,
off, on, ...) so drift in machine load hits both alike; an idle server uses no CPU. Each client
sends its requests one after another (closed loop); requests are the run's test pairs, the same
for both modes. Bounded in count (``--clients`` x ``--requests``) and time (``--phase-timeout-s``
per phase; requests not sent by then count as not sent). Throughput is requests (and generated
tokens) per second of wall time per phase, median over rounds; latencies are pooled over rounds.
The batch sizes come from the server's own ``/v1/stats``.

    python benchmarks/serve_load.py --explain runs/alignment-yelp/beat [--clients 32 --requests 2 --rounds 3]

Writes results/serve_load_<backend>.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, batching: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "llmrec", "serve", "--explain", args.explain, "--port", str(port),
           "--backend", args.backend, "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    if not batching:
        cmd.append("--no-batching")
    log = open(HERE / "results" / "work" / f"serve_load_{'on' if batching else 'off'}.log", "w")
    # own session: the whole process group (vLLM's engine processes too) is stopped at the end
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"},
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise TimeoutError("server did not start in 600 s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server (graceful: it shuts its LLM engine down), then SIGKILL to its whole
    process group in case anything outlived it."""
    import signal

    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def phase(url: str, pairs: list[tuple[str, str]], args) -> dict:
    """All clients, closed loop; returns latencies (s), errors, tokens and wall time."""
    latencies: list[float] = []
    errors: list[str] = []
    tokens = [0]
    unsent = [0]
    deadline = time.perf_counter() + args.phase_timeout_s
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)

    async with httpx.AsyncClient(base_url=url, timeout=args.phase_timeout_s, limits=limits) as client:
        async def one_client(c: int) -> None:
            for r in range(args.requests):
                if time.perf_counter() > deadline:
                    unsent[0] += args.requests - r
                    return
                user, item = pairs[(c * args.requests + r) % len(pairs)]
                t0 = time.perf_counter()
                try:
                    resp = await client.post("/v1/explain", json={"user_id": user, "item_id": item,
                                                                  "max_tokens": args.max_tokens})
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    continue
                if resp.status_code != 200:
                    errors.append(f"{resp.status_code}: {resp.text[:200]}")
                    continue
                latencies.append(time.perf_counter() - t0)
                tokens[0] += resp.json()["generated_tokens"]

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(args.clients)))
        wall = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "tokens": tokens[0], "wall": wall, "unsent": unsent[0]}


def test_pairs(run: str, n: int) -> list[tuple[str, str]]:
    from llmrec.alignment.config import AlignRunConfig
    from llmrec.alignment.train import load_inputs
    from llmrec.config import from_dict

    cfg = from_dict(AlignRunConfig, json.loads((Path(run) / "config.json").read_text()))
    _, pairs = load_inputs(cfg)
    test = pairs[pairs["split"] == "test"].drop_duplicates("id").head(n)
    return list(zip(test["user_raw"].astype(str), test["item_raw"].astype(str)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--explain", required=True, help="stage-2 run folder")
    ap.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=2, help="requests per client per phase")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--phase-timeout-s", type=float, default=900.0)
    args = ap.parse_args()

    (HERE / "results" / "work").mkdir(parents=True, exist_ok=True)
    pairs = test_pairs(args.explain, args.clients * args.requests)
    servers = {mode: start_server(args, mode == "on") for mode in ("off", "on")}
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    try:
        for mode, (_, url) in servers.items():  # warm-up: one request each, not measured
            httpx.post(url + "/v1/explain", json={"user_id": pairs[0][0], "item_id": pairs[0][1], "max_tokens": 4},
                       timeout=300).raise_for_status()
        for r in range(args.rounds):
            for mode in ("off", "on"):
                res = asyncio.run(phase(servers[mode][1], pairs, args))
                runs[mode].append(res)
                print(f"round {r + 1} {mode}: {len(res['latencies'])} ok, {len(res['errors'])} errors, "
                      f"{res['wall']:.1f} s, {len(res['latencies']) / res['wall']:.2f} req/s", flush=True)
        stats = {mode: httpx.get(url + "/v1/stats", timeout=10).json()["explain"] for mode, (_, url) in servers.items()}
        models = httpx.get(servers["on"][1] + "/v1/models", timeout=10).json()["explainer"]
    finally:
        for proc, _ in servers.values():
            stop(proc)

    rows = {}
    for mode, phases in runs.items():
        lat = np.array([x for p in phases for x in p["latencies"]]) * 1000
        rps = [len(p["latencies"]) / p["wall"] for p in phases]
        tps = [p["tokens"] / p["wall"] for p in phases]
        sizes = {int(k): v for k, v in stats[mode]["batch_sizes"].items()}
        warm = {k: v - (1 if k == 1 else 0) for k, v in sizes.items()}  # the warm-up request was a batch of 1
        n_batches = sum(warm.values())
        pct = {f"p{q}_ms": round(float(np.percentile(lat, q)), 1) for q in (50, 95, 99)}
        rows[mode] = {"requests_per_s": round(statistics.median(rps), 3),
                      "requests_per_s_rounds": [round(x, 3) for x in rps],
                      "tokens_per_s": round(statistics.median(tps), 1), **pct,
                      "ok": int(len(lat)), "errors": sum(len(p["errors"]) for p in phases),
                      "error_examples": sorted({e for p in phases for e in p["errors"]})[:5],
                      "unsent": sum(p["unsent"] for p in phases),
                      "mean_batch": round(sum(k * v for k, v in warm.items()) / n_batches, 2) if n_batches else None,
                      "batch_sizes": {str(k): v for k, v in sorted(warm.items()) if v}}
    ratio = rows["on"]["requests_per_s"] / rows["off"]["requests_per_s"]
    import torch

    out = {"explainer": models, "backend": args.backend, "clients": args.clients, "requests_per_client": args.requests,
           "rounds": args.rounds, "max_tokens": args.max_tokens, "max_batch": args.max_batch,
           "max_wait_ms": args.max_wait_ms, "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
           "modes": rows, "throughput_ratio_on_vs_off": round(ratio, 2)}
    res = HERE / "results"
    (res / f"serve_load_{args.backend}.json").write_text(json.dumps(out, indent=1) + "\n")
    md = [f"Load test of `POST /v1/explain` ({models['name']}, {args.backend} backend, run `{args.explain}`): "
          f"{args.clients} concurrent clients on loopback, {args.requests} requests each per phase, "
          f"{args.rounds} rounds alternating off/on, max_tokens {args.max_tokens}, greedy; "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}. Throughput: median over rounds; "
          "latency percentiles pooled over rounds; batch sizes as the server formed them (`/v1/stats`).", "",
          "| micro-batching | req/s | generated tok/s | p50 ms | p95 ms | p99 ms | ok | errors | mean batch "
          "| batch sizes |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, label in (("off", "off (one request per generation)"),
                        ("on", f"on (max batch {args.max_batch}, wait {args.max_wait_ms:g} ms)")):
        r = rows[mode]
        sizes = ", ".join(f"{k}: {v}" for k, v in r["batch_sizes"].items())
        md.append(f"| {label} | {r['requests_per_s']:.2f} | {r['tokens_per_s']:.0f} | {r['p50_ms']:.0f} | "
                  f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['ok']} | {r['errors']} | {r['mean_batch']} | {sizes} |")
    md += ["", f"Throughput with micro-batching: **{ratio:.2f}x** without it."]
    (res / f"serve_load_{args.backend}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""ESIM clustering cost: seconds and peak memory of each Affinity Propagation path by N.

Real user embeddings: XRec Yelp user texts (training history, MiniLM), subsampled to N = 1k, 5k
and all users with a titled training item (~15.5k). Synthetic embeddings for the scalable paths
at 100k and 1M: a seeded mixture of 2,000 Gaussian clusters on the 384-d sphere, where the
adjusted Rand index against the planted clusters checks that the fast paths still cluster.

Each measurement runs in a fresh child process; peak memory = the child's peak RSS minus its RSS
once the embeddings are loaded (so it is the clustering's own footprint, faiss included). Medians
of --repeats for N <= 16k; one run for 100k and 1M (minutes each on 2 cores). Writes
results/esim_scale.{json,md}.

    python benchmarks/esim_scale.py [--repeats 3] [--dense-max 5000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
WORK = HERE / "results" / "work" / "esim_scale"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def synthetic(n: int, *, centers: int = 2000, dim: int = 384, noise: float = 0.6, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    labels = rng.integers(0, centers, n)
    x = c[labels] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels


def yelp_embeddings() -> np.ndarray:
    path = WORK / "yelp_user_emb.npy"
    if not path.exists():
        from llmrec.config import DataConfig
        from llmrec.data.prepare import prepare
        from llmrec.interests.config import UserTextConfig
        from llmrec.interests.texts import user_texts
        from llmrec.llm.encoder import SentenceEncoder

        data = prepare(DataConfig(source="xrec", path=str(ROOT.parent / "shared" / "data" / "xrec" / "yelp")))
        texts = user_texts(data, UserTextConfig(window=20, min_titled=1))
        WORK.mkdir(parents=True, exist_ok=True)
        np.save(path, SentenceEncoder("minilm-l6").encode(texts.texts, progress=True))
    return np.load(path)


def child(spec: dict) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from llmrec.interests.cluster import cluster_users
    from llmrec.interests.config import ClusterConfig

    if spec["data"] == "yelp":
        x = yelp_embeddings()
        x = x[np.random.default_rng(0).permutation(len(x))[:spec["n"]]]
        truth = None
    else:
        x, truth = synthetic(spec["n"])
    base = rss_mb()
    t0 = time.perf_counter()
    cl = cluster_users(x, ClusterConfig(method=spec["method"], preference=spec["preference"],
                                        kmeans_centroids=spec.get("centroids", 4096)))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {**spec, "seconds": seconds, "peak_extra_mb": peak - base, "clusters": cl.n_clusters,
           "iterations": cl.n_iter, "converged": cl.converged, "preference_value": cl.preference}
    if truth is not None:
        out["ari_vs_planted"] = float(adjusted_rand_score(truth, cl.labels))
    return out


def run(spec: dict, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"child {spec} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    row = dict(runs[0])
    row["seconds"] = statistics.median(r["seconds"] for r in runs)
    row["peak_extra_mb"] = statistics.median(r["peak_extra_mb"] for r in runs)
    row["repeats"] = repeats
    row["seconds_all"] = [round(r["seconds"], 3) for r in runs]
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| data | N | path | seconds (median) | peak extra memory (MB) | clusters | AP iterations | converged | "
             "ARI vs planted | runs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ari = f"{r['ari_vs_planted']:.3f}" if "ari_vs_planted" in r else "-"
        lines.append(f"| {r['data']} | {r['n']:,} | {r['method']} | {r['seconds']:.2f} | {r['peak_extra_mb']:.0f} | "
                     f"{r['clusters']:,} | {r['iterations']} | {r['converged']} | {ari} | {r['repeats']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dense-max", type=int, default=5000, help="largest N for the dense path")
    p.add_argument("--preference", default="median")
    p.add_argument("--big", type=int, nargs="*", default=[100_000, 1_000_000])
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    n_all = len(yelp_embeddings())
    rows = []
    for n in (1000, 5000, n_all):
        for method in ("dense", "knn"):
            if method == "dense" and n > args.dense_max:
                continue
            rows.append(run({"data": "yelp", "n": n, "method": method, "preference": args.preference}, args.repeats))
    for n in args.big:
        method = "knn" if n <= 150_000 else "kmeans"
        rows.append(run({"data": "synthetic", "n": n, "method": method, "preference": args.preference,
                         "centroids": 4096}, 1))
    out = HERE / "results"
    meta = {"cpu_threads": __import__("os").cpu_count(), "preference": args.preference, "rows": rows,
            "note": f"dense AP above N={args.dense_max} not run: scikit-learn holds ~32 N^2 bytes "
                    f"({32 * n_all**2 / 2**30:.1f} GiB at N={n_all})"}
    (out / "esim_scale.json").write_text(json.dumps(meta, indent=1))
    (out / "esim_scale.md").write_text(markdown(rows) + "\n" + meta["note"] + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()

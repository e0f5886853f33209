"""One llmrec SASRec run on the exported split (a child process of sasrec_vs_recbole.py)."""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from llmrec.config import load_config
from llmrec.data.prepare import TEST, prepare
from llmrec.data.sequences import EvalExamples
from llmrec.eval.ranking import evaluate
from llmrec.train.checkpoint import load_model
from llmrec.train.run import run


def main(data_dir: str, out_json: str, seed: int, epochs: int, patience: int) -> None:
    out_dir = Path(out_json).parent / f"llmrec-seed{seed}"
    cfg = load_config(Path(__file__).with_name("sasrec_ml100k.yaml"), [
        "data.source=recbole", f"data.path={data_dir}", f"data.cache_dir={out_dir}/cache",
        f"train.seed={seed}", f"train.epochs={epochs}", f"train.patience={patience}",
        f"train.out_dir={out_dir}", "train.resume=false", "train.progress=false"])
    t0 = time.perf_counter()
    data = prepare(cfg.data)
    setup_s = time.perf_counter() - t0
    result = run(cfg, data)
    log = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    model, _ = load_model(out_dir / "best.safetensors")
    test = EvalExamples.build(data, TEST, cfg.data.max_len)
    eval_times = []
    for _ in range(5):
        t = time.perf_counter()
        evaluate(model, test, cfg.eval, n_items=data.n_items)
        eval_times.append(time.perf_counter() - t)
    best = max(log, key=lambda r: r["valid_ndcg@10"])
    users = [data.user_vocab[u] for u in result["test_users"]]
    out = {
        "system": "llmrec", "seed": seed, "setup_seconds": setup_s + result["prepare_seconds"],
        "epochs_run": len(log), "best_epoch": best["epoch"], "best_valid_ndcg@10": best["valid_ndcg@10"],
        "seconds_to_best": best["elapsed_seconds"],
        "seconds_per_epoch_median": float(np.median([r["epoch_seconds"] for r in log])),
        "test_eval_seconds_median": statistics.median(eval_times),
        "test": result["test"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "log": [{"epoch": r["epoch"], "valid_ndcg@10": r["valid_ndcg@10"],
                 "elapsed_seconds": r["elapsed_seconds"]} for r in log],
        "per_user": {"users": users, "ndcg@10": result["per_user"]["ndcg@10"].tolist(),
                     "hr@10": result["per_user"]["hr@10"].tolist()},
    }
    Path(out_json).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))

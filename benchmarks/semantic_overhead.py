"""Training seconds per epoch with and without the ESIM semantic losses (EIMF adapter).

MovieLens-100k, the backbones and semantic settings of configs/ablations/eimf-ml100k.yaml. For each backbone
the variants plain / align only / predict only / both run side by side in one process, interleaved
(plain, align, predict, esim, plain, ...) so drift in machine load hits all of them alike. Each
measurement times training epochs only (no validation), after one warm-up epoch; medians over
--epochs x --repeats epochs. Also the peak training-step memory is not measured here (CPU RSS is
dominated by the dataset and is the same for all variants).

    python benchmarks/semantic_overhead.py [--epochs 3] [--repeats 3] [--interests runs/interests-ml100k]

Writes results/semantic_overhead.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "ablations" / "eimf-ml100k.yaml"))
    ap.add_argument("--interests", default=str(ROOT / "runs" / "interests-ml100k"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from llmrec.data.prepare import prepare
    from llmrec.experiments.ablate import load_ablation, run_config
    from llmrec.train.run import build_adapter, setup
    from llmrec.train.seed import seed_everything
    from llmrec.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    variants = ["plain", "align", "predict", "esim"]
    ab = load_ablation(args.config, [f"semantic.interests={args.interests}"], variants=variants)
    work = HERE / "results" / "work" / "semantic_overhead"
    data = None
    rows = []
    for backbone in ab["backbones"]:
        trainers = {}
        for v in variants:
            cfg = run_config(ab, backbone, v, 0, work)
            cfg.train.progress, cfg.train.resume = False, False
            seed_everything(0)
            data = data or prepare(cfg.data)
            _, train, _, _, model = setup(cfg, data)
            adapter, _ = build_adapter(cfg, data, model)
            trainers[v] = (Trainer(model, cfg.train, eval_cfg=cfg.eval, n_items=data.n_items, adapter=adapter), train)
            trainers[v][0]._epoch(train)  # warm-up
        times = {v: [] for v in variants}
        for _ in range(args.repeats):
            for v in variants:
                trainer, train = trainers[v]
                for _ in range(args.epochs):
                    t0 = time.perf_counter()
                    trainer._epoch(train)
                    times[v].append(time.perf_counter() - t0)
        base = statistics.median(times["plain"])
        for v in variants:
            med = statistics.median(times[v])
            n_params = sum(p.numel() for p in trainers[v][0].train_module.parameters())
            rows.append({"backbone": backbone, "variant": v, "epoch_seconds_median": med,
                         "epoch_seconds": times[v], "ratio_to_plain": med / base,
                         "trained_parameters": n_params, "windows": len(trainers[v][1])})
            print(f"{backbone:8s} {v:8s} {med:.3f} s/epoch  x{med / base:.2f}", flush=True)
    result = {"dataset": "ml-100k", "config": args.config, "interests": args.interests, "threads": args.threads,
              "epochs_per_repeat": args.epochs, "repeats": args.repeats,
              "semantic": ab["base"].get("semantic"), "rows": rows}
    lines = [f"Training seconds per epoch on MovieLens-100k ({rows[0]['windows']} windows of 50, batch "
             f"{ab['base']['train']['batch_size']}), {args.threads} CPU threads; median of "
             f"{args.epochs * args.repeats} epochs per cell, variants interleaved in one process, no validation.",
             "", "| backbone | variant | s/epoch (median) | vs plain | trained parameters |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backbone']} | {r['variant']} | {r['epoch_seconds_median']:.3f} | "
                     f"{r['ratio_to_plain']:.2f}x | {r['trained_parameters']:,} |")
    out = HERE / "results"
    (out / "semantic_overhead.json").write_text(json.dumps(result, indent=1))
    (out / "semantic_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

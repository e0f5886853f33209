"""Training seconds per epoch: SASRec, SASRec + behaviour embedding, BLADE, BLADE without its
contrastive views, on MovieLens-100k with derived behaviour sets (blade_stage/ml100k.yaml).

All models are built in one process and timed interleaved (sasrec, sasrec+beh, blade, blade
w/o CL, sasrec, ...) so drift in machine load hits all of them alike; training epochs only (no
validation), after one warm-up epoch; medians over --epochs x --repeats epochs.

    python benchmarks/blade_epoch.py [--epochs 2] [--repeats 3] [--threads 2]

Writes results/blade_epoch.{json,md}.
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
    ap.add_argument("--config", default=str(ROOT / "blade_stage" / "ml100k.yaml"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from llmrec.data.prepare import prepare
    from llmrec.train.ablate import load_ablation, run_config
    from llmrec.train.run import setup
    from llmrec.train.seed import seed_everything
    from llmrec.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    ab = load_ablation(args.config, [])
    variant = ab["variants"][0]
    ab["backbones"]["blade w/o CL"] = {**ab["backbones"]["blade"], "name": "blade", "cl_weight": 0.0}
    work = HERE / "results" / "work" / "blade_epoch"
    data, trainers = None, {}
    for label in ab["backbones"]:
        cfg = run_config(ab, label, variant, 0, work)
        cfg.train.progress, cfg.train.resume = False, False
        seed_everything(0)
        data = data or prepare(cfg.data)
        _, train, _, _, model = setup(cfg, data)
        trainers[label] = (Trainer(model, cfg.train, eval_cfg=cfg.eval, n_items=data.n_items), train)
        trainers[label][0]._epoch(train)  # warm-up
    times: dict[str, list[float]] = {label: [] for label in trainers}
    for _ in range(args.repeats):
        for label, (trainer, train) in trainers.items():
            for _ in range(args.epochs):
                t0 = time.perf_counter()
                trainer._epoch(train)
                times[label].append(time.perf_counter() - t0)
    base = statistics.median(times["sasrec"])
    rows = []
    for label, (trainer, train) in trainers.items():
        med = statistics.median(times[label])
        rows.append({"model": label, "epoch_seconds_median": med, "epoch_seconds": times[label],
                     "ratio_to_sasrec": med / base,
                     "parameters": sum(p.numel() for p in trainer.model.parameters()), "windows": len(train)})
        print(f"{label:14s} {med:7.3f} s/epoch  x{med / base:.2f}", flush=True)
    result = {"dataset": "ml-100k (derived behaviours)", "config": args.config, "threads": args.threads,
              "epochs_per_repeat": args.epochs, "repeats": args.repeats,
              "torch": torch.__version__, "rows": rows}
    lines = [f"Training seconds per epoch on MovieLens-100k with derived behaviour sets ({rows[0]['windows']} "
             f"windows of 50, batch {ab['base']['train']['batch_size']}), {args.threads} CPU threads, torch "
             f"{torch.__version__}; median of {args.epochs * args.repeats} epochs per model, models interleaved "
             "in one process, no validation.", "",
             "| model | s/epoch (median) | vs SASRec | parameters |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['epoch_seconds_median']:.2f} | {r['ratio_to_sasrec']:.2f}x | "
                     f"{r['parameters']:,} |")
    out = HERE / "results"
    (out / "blade_epoch.json").write_text(json.dumps(result, indent=1))
    (out / "blade_epoch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

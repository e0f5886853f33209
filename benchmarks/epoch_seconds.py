"""Training seconds per epoch of every cell of an ablation config, side by side in one process.

Each (backbone, variant) cell of the config (seed 0), plus cells added with --add, is built once
and timed interleaved (cell 1, cell 2, ..., cell 1, ...) so drift in machine load hits all of them
alike; training epochs only (no validation), after one warm-up epoch; medians over
--epochs x --repeats epochs; ratios against the first cell.

    python benchmarks/epoch_seconds.py configs/ablations/blade-ml100k.yaml --add "blade no-CL=blade:cl_weight=0"
    python benchmarks/epoch_seconds.py configs/ablations/dspnet-ml100k.yaml --add "dspnet no-CCR=dspnet:ccr_weight=0"

Writes results/epoch_seconds_<config file stem>.{json,md} (runs before 2026-12 were named after the config folder).
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
    ap.add_argument("config")
    ap.add_argument("--add", action="append", default=[], metavar="LABEL=BACKBONE:key=value[,key=value]",
                    help="an extra cell: a config backbone with backbone-section overrides")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import yaml

    from llmrec.data.prepare import prepare
    from llmrec.experiments.ablate import load_ablation, run_config
    from llmrec.train.run import setup
    from llmrec.train.seed import seed_everything
    from llmrec.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    ab = load_ablation(args.config, [])
    cells = [(f"{b}" + (f" / {v}" if len(ab["variants"]) > 1 else ""), b, v)
             for b in ab["backbones"] for v in ab["variants"]]
    for spec in args.add:
        label, _, rest = spec.partition("=")
        base, _, overrides = rest.partition(":")
        section = {**ab["backbones"][base], "name": ab["backbones"][base].get("name", base)}
        for item in filter(None, overrides.split(",")):
            key, _, value = item.partition("=")
            section[key] = yaml.safe_load(value)
        ab["backbones"][label] = section
        cells.append((label, label, ab["variants"][0]))
    work = HERE / "results" / "work" / "epoch_seconds"
    data, trainers = None, {}
    for label, backbone, variant in cells:
        cfg = run_config(ab, backbone, variant, 0, work)
        cfg.train.progress, cfg.train.resume = False, False
        seed_everything(0)
        data = data or prepare(cfg.data)
        _, train, _, _, model = setup(cfg, data)
        trainers[label] = (Trainer(model, cfg.train, eval_cfg=cfg.eval, n_items=data.n_items), train)
        trainers[label][0]._epoch(train)  # warm-up
        print(f"built {label}", flush=True)
    times: dict[str, list[float]] = {label: [] for label in trainers}
    for _ in range(args.repeats):
        for label, (trainer, train) in trainers.items():
            for _ in range(args.epochs):
                t0 = time.perf_counter()
                trainer._epoch(train)
                times[label].append(time.perf_counter() - t0)
    first = cells[0][0]
    base = statistics.median(times[first])
    rows = []
    for label, (trainer, train) in trainers.items():
        med = statistics.median(times[label])
        rows.append({"model": label, "epoch_seconds_median": med, "epoch_seconds": times[label],
                     "ratio": med / base, "parameters": sum(p.numel() for p in trainer.model.parameters()),
                     "windows": len(train)})
        print(f"{label:24s} {med:7.3f} s/epoch  x{med / base:.2f}", flush=True)
    result = {"config": args.config, "threads": args.threads, "epochs_per_repeat": args.epochs,
              "repeats": args.repeats, "torch": torch.__version__, "derived": data.meta.get("derived", []),
              "rows": rows}
    lines = [f"Training seconds per epoch, `{args.config}` ({data.name}; {rows[0]['windows']} windows of "
             f"{ab['base'].get('data', {}).get('max_len', 50)}, batch {ab['base']['train']['batch_size']}), "
             f"{args.threads} CPU threads, torch {torch.__version__}; median of {args.epochs * args.repeats} "
             "epochs per model, models interleaved in one process, no validation.", "",
             f"| model | s/epoch (median) | vs {first} | parameters |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['epoch_seconds_median']:.2f} | {r['ratio']:.2f}x | {r['parameters']:,} |")
    name = Path(args.config).stem
    out = HERE / "results"
    (out / f"epoch_seconds_{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"epoch_seconds_{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

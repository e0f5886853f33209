"""Training seconds per epoch of every cell of an ablation config, side by side in one process.

Each (backbone, variant) cell of the config (seed 0), plus cells added with --add, is built once
and timed interleaved (cell 1, cell 2, ..., cell 1, ...) so drift in machine load hits all of them
alike; training epochs only (no validation), after one warm-up epoch; medians over
--epochs x --repeats epochs; ratios against the first cell.

    python benchmarks/epoch_seconds.py configs/ablations/blade-ml100k.yaml --add "blade no-CL=blade:cl_weight=0"
    python benchmarks/epoch_seconds.py configs/ablations/dspnet-ml100k.yaml --add "dspnet no-CCR=dspnet:ccr_weight=0"

Writes results/epoch_seconds_<config file stem, or --name>.{json,md} (runs before 2026-12 were named
after the config folder). ``--backbones`` times a subset of the config's backbones.

On data where one epoch takes minutes (the real releases: full softmax over ~30k items),
``--batches N`` times N-batch slices instead of whole epochs (the same seeded random windows for
every model) and reports the median seconds per batch and that times the batches of one epoch,
labelled as an estimate:

    python benchmarks/epoch_seconds.py configs/ablations/retailrocket-mb.yaml --batches 5 --repeats 3
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
    ap.add_argument("--variants", nargs="+", help="only these variants of the config (default: all)")
    ap.add_argument("--backbones", nargs="+",
                    help="only these backbones of the config as cells (--add may still start from any)")
    ap.add_argument("--name", help="results/epoch_seconds_<name>.{json,md} (default: the config file's stem)")
    ap.add_argument("--batches", type=int, default=0,
                    help="time slices of this many batches instead of whole epochs (0: whole epochs)")
    args = ap.parse_args()

    import torch
    import yaml

    import math

    import numpy as np

    from llmrec.data.prepare import prepare
    from llmrec.data.sequences import TrainWindows
    from llmrec.experiments.ablate import load_ablation, run_config
    from llmrec.train.run import build_adapter, setup
    from llmrec.train.seed import seed_everything
    from llmrec.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    ab = load_ablation(args.config, [], variants=args.variants)
    cells = [(f"{b}" + (f" / {v}" if len(ab["variants"]) > 1 else ""), b, v)
             for b in ab["backbones"] for v in ab["variants"] if not args.backbones or b in args.backbones]
    if args.backbones and (unknown := set(args.backbones) - set(ab["backbones"])):
        raise SystemExit(f"--backbones {sorted(unknown)} are not in {args.config}: {list(ab['backbones'])}")
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
        n_windows, full_batches = len(train), math.ceil(len(train) / cfg.train.batch_size)
        if args.batches:  # the same seeded slice of windows for every model
            pick = np.random.default_rng(0).permutation(len(train))[: args.batches * cfg.train.batch_size]
            train = TrainWindows(train.users[pick], {f: w[pick] for f, w in train.windows.items()},
                                 train.target_behavior)
        adapter, _ = build_adapter(cfg, data, model)  # an ESIM variant trains through its adapter
        trainers[label] = (Trainer(model, cfg.train, eval_cfg=cfg.eval, n_items=data.n_items, adapter=adapter), train)
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
    scale = full_batches / args.batches if args.batches else 1.0  # slice seconds -> one epoch
    for label, (trainer, train) in trainers.items():
        med = statistics.median(times[label]) * scale
        rows.append({"model": label, "epoch_seconds_median": med, "epoch_seconds": times[label],
                     "batch_seconds_median": statistics.median(times[label]) / (args.batches or full_batches),
                     "ratio": med / (base * scale), "parameters": sum(p.numel() for p in trainer.train_module.parameters()),
                     "windows": n_windows})
        print(f"{label:24s} {med:7.3f} s/epoch  x{rows[-1]['ratio']:.2f}", flush=True)
    result = {"command": ["python", "benchmarks/epoch_seconds.py", *sys.argv[1:]], "config": args.config,
              "threads": args.threads, "epochs_per_repeat": args.epochs,
              "repeats": args.repeats, "batches": args.batches, "batches_per_epoch": full_batches,
              "torch": torch.__version__, "derived": data.meta.get("derived", []),
              "caveats": data.meta.get("caveats", []), "rows": rows}
    what = (f"median of {args.epochs * args.repeats} slices of {args.batches} batches per model (the same "
            f"seeded windows for every model), times {full_batches} batches per epoch: an ESTIMATE of one "
            "epoch" if args.batches else f"median of {args.epochs * args.repeats} epochs per model")
    lines = [f"Training seconds per epoch, `{args.config}` ({data.name}; {n_windows} windows = {full_batches} batches of "
             f"{ab['base']['train']['batch_size']}, max_len {ab['base'].get('data', {}).get('max_len', 50)}), "
             f"{args.threads} CPU threads, torch {torch.__version__}; {what}, models interleaved in one "
             "process, no validation.", "",
             f"| model | s/epoch (median) | s/batch | vs {first} | parameters |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['epoch_seconds_median']:.2f} | {r['batch_seconds_median']:.3f} | "
                     f"{r['ratio']:.2f}x | {r['parameters']:,} |")
    name = args.name or Path(args.config).stem
    out = HERE / "results"
    (out / f"epoch_seconds_{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"epoch_seconds_{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

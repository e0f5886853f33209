"""Collect selection runs (``llmrec train ... eval.test=false``) into one table of validation figures.

    python benchmarks/valid_selection.py /work/runs/select-mf --name retailrocket_mf_selection

Every ``results.json`` under the folder is one configuration tried; the table lists the backbone,
plug-ins, training loss (full softmax, or the proposal and K of a sampled one), learning rate, the
rows it trained on when not every behaviour's (``data.keep_behaviors=target``), the best validation
metric, the best epoch and the epochs run. A run that computed test metrics is refused: selection
figures come from valid only.
Writes results/<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec.atomic import write_text  # noqa: E402


def collect(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.rglob("results.json")):
        res = json.loads(path.read_text())
        if res.get("test") is not None:
            raise SystemExit(f"{path}: this run computed test metrics; only eval.test=false runs belong here")
        metric = next(k for k in res if k.startswith("best_valid_"))
        cfg = res["config"]
        rows.append({"run": str(path.parent.relative_to(folder)), "backbone": res["backbone"],
                     "plugins": res["plugins"], "loss": loss_label(cfg["backbone"]), "lr": cfg["train"]["lr"],
                     "seed": cfg["train"]["seed"], "train_rows": cfg["data"].get("keep_behaviors", "all"),
                     "metric": metric.removeprefix("best_valid_"), "valid": res[metric],
                     "best_epoch": res["best_epoch"], "epochs": res["epochs"],
                     "train_seconds": round(res["train_seconds"], 1), "dataset": res["dataset"]})
    if not rows:
        raise SystemExit(f"{folder}: no results.json found")
    return rows


def loss_label(backbone: dict) -> str:
    """'full softmax', 'uniform K=256', ... from a run's backbone section."""
    loss = backbone.get("loss", "ce")
    own = (backbone.get("plugins") or {}).get("mclmr") or {}
    if loss == "ce" and own.get("n_sampled", 0) > 0:  # the plug-in samples its own loss
        return f"{own.get('sampler', 'uniform')} K={own['n_sampled']}"
    if loss == "ce":
        return "full softmax"
    if loss == "sampled_ce":
        return f"{backbone.get('sampler', 'uniform')} K={backbone.get('n_negatives')}"
    return loss


def markdown(rows: list[dict]) -> str:
    lines = [f"Selection on VALID ({rows[0]['dataset']}; no test metric computed), best validation "
             f"{rows[0]['metric']}:", "",
             "| run | model | loss | lr | seed | valid | best epoch | epochs | train s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["backbone"], r["plugins"], r["loss"], r["lr"])):
        model = " + ".join([r["backbone"], *r["plugins"]])
        if r.get("train_rows", "all") != "all":
            model += f" ({r['train_rows']}-behaviour rows only)"
        lines.append(f"| {r['run']} | {model} | {r['loss']} | {r['lr']:g} | {r['seed']} | {r['valid']:.4f} | "
                     f"{r['best_epoch']} | {r['epochs']} | {r['train_seconds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--name", required=True, help="results/<name>.{json,md}")
    args = parser.parse_args()
    publish(args.name, collect(args.folder), markdown)


def publish(name: str, rows: list[dict], markdown) -> None:
    """results/<name>.json (the rows) and .md (``markdown(rows)``), written atomically; prints the table."""
    out = HERE / "results" / name
    write_text(out.with_suffix(".json"), json.dumps(rows, indent=1))
    write_text(out.with_suffix(".md"), markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()

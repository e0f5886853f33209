"""``llmrec report RUN_DIR``: one Markdown page for a finished run or ablation folder.

A training run folder (``metrics.jsonl`` + ``results.md``) gets its results table and a PNG of the
training curves (loss, every logged auxiliary term, the validation metric by epoch). An ablation
folder (``results.json`` with ``rows``) gets its tables, its bar plot and the validation curves
of every cell. The page and its images are written into the folder (atomically).
"""

from __future__ import annotations

import json
from pathlib import Path

from llmrec.atomic import write_text
from llmrec.errors import DataError


def _records(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {n}: not JSON ({exc.msg})") from None
    return rows


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def plot_run(records: list[dict], path: Path, metric: str | None = None) -> str:
    """Loss terms and the validation metric by epoch; returns the metric plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    valid = [k for k in records[0] if k.startswith("valid_")]
    metric = metric or next((k for k in ("valid_ndcg@10", "valid_ndcg@20") if k in records[0]),
                            valid[0] if valid else "")
    losses = sorted({k for r in records for k in r if k == "loss" or k.startswith("loss_")})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for k in losses:
        axes[0].plot(epochs, [r.get(k, float("nan")) for r in records], label=k)
    axes[0].set_xlabel("epoch")
    axes[0].set_title("training losses")
    axes[0].legend(fontsize=7)
    if metric:
        axes[1].plot(epochs, [r.get(metric, float("nan")) for r in records], marker=".")
        axes[1].set_title(metric.replace("valid_", "validation "))
    axes[1].set_xlabel("epoch")
    fig.tight_layout()
    _save(fig, path)
    return metric


def report(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such run folder")
    log, results = folder / "metrics.jsonl", folder / "results.json"
    if log.exists():
        records = _records(log)
        if not records:
            raise DataError(f"{log}: no epochs logged")
        chosen = None
        if results.exists():
            chosen = "valid_" + json.loads(results.read_text()).get("config", {}).get("train", {}).get("metric", "")
        metric = plot_run(records, folder / "report_curves.png", chosen if chosen in records[0] else None)
        table = (folder / "results.md").read_text() if (folder / "results.md").exists() else "(no results.md yet)\n"
        page = (f"# Run report: {folder}\n\n{table}\n## Training curves\n\n![curves](report_curves.png)\n\n"
                f"{len(records)} epochs; right panel: {metric}.\n")
    elif results.exists() and "rows" in json.loads(results.read_text()):
        page = _ablation_page(folder, json.loads(results.read_text()))
    else:
        raise DataError(f"{folder}: neither a run folder (metrics.jsonl) nor an ablation folder (results.json)")
    out = folder / "report.md"
    write_text(out, page)
    return out


def _ablation_page(folder: Path, report_json: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmrec.experiments.ablate import markdown

    fig, ax = plt.subplots(figsize=(6, 3.6))
    metric = "valid_" + report_json.get("config", {}).get("train", {}).get("metric", "ndcg@10")
    for row in report_json["rows"]:
        log = folder / row["backbone"] / row["variant"] / f"seed{row['seeds'][0]}" / "metrics.jsonl"
        if not log.exists():
            continue
        records = _records(log)
        if metric in records[0]:
            ax.plot([r["epoch"] for r in records], [r.get(metric) for r in records],
                    label=f"{row['backbone']} / {row['variant']}")
    ax.set_xlabel("epoch")
    ax.set_title(f"{metric or 'validation'} (seed {report_json['seeds'][0]})")
    ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, folder / "report_curves.png")
    bars = "![results](results.png)\n\n" if (folder / "results.png").exists() else ""
    return (f"# Ablation report: {folder}\n\n{markdown(report_json)}\n{bars}"
            f"## Validation curves\n\n![curves](report_curves.png)\n")

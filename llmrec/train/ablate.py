"""With/without ESIM semantic signals for several backbones and seeds, in one resumable run.

An ablation config is a run config (data, train, eval, semantic) plus three keys of its own:

    backbones: {sasrec: {n_layers: 2, ...}, ibim: {...}}   # each backbone's own section
    seeds: [0, 1, 2]
    variants: [plain, esim]       # plain: semantic off; esim: both terms; align / predict: one term

Each (backbone, variant, seed) trains into ``out/<backbone>/<variant>/seed<s>``; a finished run
(results.json present) is reused, an interrupted one resumes from its last.pt. The report gives
mean and std over seeds per cell, and for every non-plain variant a paired bootstrap over test
users of (variant - plain), each user's metric first averaged over the seeds.
"""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.atomic import write_text
from llmrec.config import apply_overrides, read_config_file
from llmrec.errors import ConfigError

VARIANTS = {"plain": None, "esim": (True, True), "align": (True, False), "predict": (False, True)}
REPORTED = ["recall@20", "recall@50", "ndcg@20", "ndcg@50"]


def load_ablation(path: str | Path | None, overrides: list[str], *, backbones: list[str] | None = None,
                  seeds: list[int] | None = None, variants: list[str] | None = None) -> dict[str, Any]:
    """Read an ablation config; the keyword arguments replace its backbones, seeds, variants."""
    values = read_config_file(path)
    apply_overrides(values, overrides)
    sections = values.pop("backbones", None) or {"sasrec": {}}
    seeds = seeds or values.pop("seeds", [0])
    variants = variants or values.pop("variants", ["plain", "esim"])
    values.pop("seeds", None), values.pop("variants", None)  # replaced by the arguments
    if not isinstance(sections, dict):
        raise ConfigError(f"{path}: backbones must map a backbone name to its section")
    if backbones:
        sections = {b: sections.get(b, {}) for b in backbones}
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"variants: unknown {unknown}; known: {list(VARIANTS)}")
    if any(v != "plain" for v in variants) and not (values.get("semantic") or {}).get("interests"):
        raise ConfigError("semantic.interests is required for the esim/align/predict variants "
                          "(an `llmrec interests extract` folder)")
    return {"base": values, "backbones": sections, "seeds": [int(s) for s in seeds], "variants": list(variants)}


def run_config(ab: dict[str, Any], backbone: str, variant: str, seed: int, out: Path):
    from llmrec.config import RunConfig, backbone_config, from_dict

    values = copy.deepcopy(ab["base"])
    values["backbone"] = {"name": backbone, **(ab["backbones"][backbone] or {})}
    sem = values.setdefault("semantic", {})
    switch = VARIANTS[variant]
    if switch is None:
        sem["interests"] = None
    else:  # a term switched off gets weight 0; the other keeps the config's (or the default) weight
        if not switch[0]:
            sem["align_weight"] = 0.0
        if not switch[1]:
            sem["predict_weight"] = 0.0
    train = values.setdefault("train", {})
    train["seed"], train["out_dir"] = seed, str(out / backbone / variant / f"seed{seed}")
    cfg = from_dict(RunConfig, values)
    backbone_config(cfg.backbone)
    return cfg


def run_ablation(ab: dict[str, Any], out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    from llmrec.data.prepare import prepare
    from llmrec.train.run import run

    out = Path(out)
    data = None
    cells: dict[str, dict[str, Any]] = {}
    for backbone in ab["backbones"]:
        for variant in ab["variants"]:
            for seed in ab["seeds"]:
                cfg = run_config(ab, backbone, variant, seed, out)
                cfg.train.progress = progress and cfg.train.progress
                folder = Path(cfg.train.out_dir)
                if not (folder / "results.json").exists():
                    print(f"== {backbone} / {variant} / seed {seed} -> {folder}", flush=True)
                    data = data or prepare(cfg.data)
                    run(cfg, data)
                cells[f"{backbone}/{variant}/seed{seed}"] = read_run(folder)
    report = summarise(ab, cells)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(report, indent=1))
    write_text(out / "results.md", markdown(report))
    plot(report, out / "results.png")
    return report


def read_run(folder: Path) -> dict[str, Any]:
    """A finished run folder's test metrics, per-user test metrics and timings."""
    res = json.loads((folder / "results.json").read_text())
    per = np.load(folder / "test_per_user.npz")
    epochs = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return {"test": res["test"], "best_epoch": res["best_epoch"], "epochs": res["epochs"],
            "train_seconds": res["train_seconds"], "semantic": res.get("semantic"),
            "epoch_seconds_median": statistics.median(r["epoch_seconds"] for r in epochs),
            "users": per["users"], "per_user": {k: per[k] for k in per.files if k != "users"}}


def summarise(ab: dict[str, Any], cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from llmrec.eval.bootstrap import paired_bootstrap

    rows, diffs = [], []
    for backbone in ab["backbones"]:
        mean_user: dict[str, dict[str, np.ndarray]] = {}
        users = None
        for variant in ab["variants"]:
            runs = [cells[f"{backbone}/{variant}/seed{s}"] for s in ab["seeds"]]
            for r in runs:
                if users is not None and not np.array_equal(users, r["users"]):
                    raise ValueError("test users differ between runs of one ablation (data changed?)")
                users = r["users"]
            row = {"backbone": backbone, "variant": variant, "seeds": ab["seeds"],
                   "best_epochs": [r["best_epoch"] for r in runs],
                   "epoch_seconds_median": statistics.median(r["epoch_seconds_median"] for r in runs)}
            for m in REPORTED:
                vals = [r["test"][m] for r in runs]
                row[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                          "per_seed": vals}
            rows.append(row)
            mean_user[variant] = {m: np.mean([r["per_user"][m] for r in runs], axis=0) for m in REPORTED}
        if "plain" not in mean_user:
            continue
        for variant in ab["variants"]:
            if variant == "plain":
                continue
            d = {"backbone": backbone, "variant": variant, "vs": "plain"}
            for m in REPORTED:
                boot = paired_bootstrap(mean_user["plain"][m], mean_user[variant][m])
                base = float(mean_user["plain"][m].mean())
                d[m] = {**boot, "relative": boot["mean_diff"] / base if base else float("nan")}
            diffs.append(d)
    return {"rows": rows, "differences": diffs, "seeds": ab["seeds"], "variants": ab["variants"],
            "backbones": list(ab["backbones"]), "config": ab["base"],
            "n_test_users": int(len(next(iter(cells.values()))["users"])) if cells else 0}


def markdown(report: dict[str, Any]) -> str:
    head = "| model | " + " | ".join(m.replace("@", "@") for m in REPORTED) + " | best epochs | s/epoch |"
    lines = [f"Test, full ranking; mean ± std over seeds {report['seeds']}.", "", head,
             "|---|" + "---|" * (len(REPORTED) + 2)]
    for r in report["rows"]:
        name = r["backbone"] + {"plain": "", "esim": " + ESIM"}.get(r["variant"], f" + ESIM {r['variant']} only")
        cells = [f"{r[m]['mean']:.4f} ± {r[m]['std']:.4f}" for m in REPORTED]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {', '.join(map(str, r['best_epochs']))} | "
                     f"{r['epoch_seconds_median']:.2f} |")
    if report["differences"]:
        lines += ["", f"Paired bootstrap over {report['n_test_users']} test users (each user's metric averaged "
                  "over the seeds), variant minus plain, 95% interval; relative change in brackets.", "",
                  "| difference | " + " | ".join(REPORTED) + " |", "|---|" + "---|" * len(REPORTED)]
        for d in report["differences"]:
            cells = [f"{d[m]['mean_diff']:+.4f} [{d[m]['ci_low']:+.4f}, {d[m]['ci_high']:+.4f}] "
                     f"({d[m]['relative']:+.1%})" for m in REPORTED]
            lines.append(f"| {d['backbone']}: {d['variant']} − plain | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(REPORTED), figsize=(3.2 * len(REPORTED), 3.2))
    labels = [f"{r['backbone']}\n{r['variant']}" for r in report["rows"]]
    for ax, m in zip(axes, REPORTED):
        means = [r[m]["mean"] for r in report["rows"]]
        stds = [r[m]["std"] for r in report["rows"]]
        ax.bar(range(len(means)), means, yerr=stds, capsize=3,
               color=["#999" if r["variant"] == "plain" else "#3a7" for r in report["rows"]])
        ax.set_xticks(range(len(means)), labels, fontsize=7)
        ax.set_title(m)
    fig.suptitle(f"test, mean ± std over seeds {report['seeds']}", fontsize=9)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)

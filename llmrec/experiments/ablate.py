"""Several backbones x variants x seeds in one resumable run, one table with paired intervals.

An ablation config is a run config (data, train, eval, semantic) plus keys of its own:

    backbones:                      # label -> backbone section; `name` defaults to the label
      sasrec: {n_layers: 2}
      sasrec+beh: {name: sasrec, behaviors: true}
      mf: {hidden: 64, train: {lr: 0.01}}   # `train` here overrides the run's train keys for this backbone
    seeds: [0, 1, 2]
    variants: [plain, esim]         # built-in: plain (semantic off), esim (both terms), align, predict
    variants:                       # or named overrides of the run config (dotted keys)
      full: {}
      no_early: {backbone.early_fusion: none}
    baseline: sasrec                # optional: every other backbone vs this one, per variant
    metrics: [hr@5, ndcg@5]         # optional: the reported metrics (default recall/ndcg @20, @50)
    by_popularity: [ndcg@20]        # optional: also these metrics by popularity group of the held-out item

Each (backbone, variant, seed) trains into ``out/<backbone>/<variant>/seed<s>``; a finished run
(results.json present) is reused, an interrupted one resumes from its last.safetensors. The report gives
mean and std over seeds per cell, and paired bootstraps over test users (each user's metric first
averaged over the seeds): every variant vs the reference variant (``plain`` when present, else the
first) of its backbone, with ``baseline`` every backbone vs the baseline in each variant, and
with ``pairs`` ([[backbone, reference], ...]) each listed backbone vs its reference, and with
``variant_pairs`` ([[variant, reference variant], ...]) each listed variant vs its reference in
every backbone (e.g. real interests vs a shuffled control).
"""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.atomic import write_text
from llmrec.config import apply_overrides, read_config_file, set_dotted
from llmrec.errors import ConfigError

VARIANTS = {"plain": None, "esim": (True, True), "align": (True, False), "predict": (False, True)}
REPORTED = ["recall@20", "recall@50", "ndcg@20", "ndcg@50"]


def load_ablation(path: str | Path | None, overrides: list[str], *, backbones: list[str] | None = None,
                  seeds: list[int] | None = None, variants: list[str] | None = None) -> dict[str, Any]:
    """Read an ablation config; the keyword arguments replace (or pick from) its backbones, seeds, variants."""
    values = read_config_file(path, "ablation")
    apply_overrides(values, overrides)
    sections = values.pop("backbones", None) or {"sasrec": {}}
    seeds = seeds or values.pop("seeds", [0])
    given = values.pop("variants", None) or ["plain", "esim"]
    values.pop("seeds", None)
    baseline, metrics = values.pop("baseline", None), values.pop("metrics", None) or list(REPORTED)
    grouped = values.pop("by_popularity", None) or []
    if not isinstance(sections, dict):
        raise ConfigError(f"{path}: backbones must map a label to a backbone section")
    if backbones:
        # "a,b c" and "a b c" pick the same (--variants is comma-separated; accept both spellings)
        backbones = [b for arg in backbones for b in str(arg).split(",") if b]
        unknown = [b for b in backbones if b not in sections and not _registered(b)]
        if unknown:
            raise ConfigError(f"{path}: --backbones {unknown} are neither labels of the config's backbones "
                              f"{list(sections)} nor registered backbones")
        if baseline is not None and baseline in sections and baseline not in backbones:
            baseline = None  # --backbones left the baseline out: no differences against it
        sections = {b: sections.get(b, {}) for b in backbones}
    if isinstance(given, dict):
        for name, ov in given.items():
            if not str(name) or any(ch in str(name) for ch in "/\\ "):
                raise ConfigError(f"{path}: variant name {name!r} names a folder: no '/', '\\' or spaces")
            if not isinstance(ov, dict):
                raise ConfigError(f"{path}: variants.{name} must map dotted config keys to values")
        custom = {str(k): dict(v or {}) for k, v in given.items()}
        names = list(variants or custom)
        unknown = [v for v in names if v not in custom]
        known = list(custom)
    else:
        custom = {}
        names = list(variants or given)
        unknown = [v for v in names if v not in VARIANTS]
        known = list(VARIANTS)
    if unknown:
        raise ConfigError(f"variants: unknown {unknown}; known: {known}")
    if not custom and any(v != "plain" for v in names) and not (values.get("semantic") or {}).get("interests"):
        raise ConfigError("semantic.interests is required for the esim/align/predict variants "
                          "(an `llmrec interests extract` folder)")
    if baseline is not None and baseline not in sections:
        raise ConfigError(f"baseline {baseline!r} is not one of the backbones {list(sections)}")
    if (values.get("eval") or {}).get("test") is False:
        raise ConfigError(f"{path}: eval.test=false: an ablation reports test metrics; choose settings "
                          "with `llmrec train ... eval.test=false` runs instead")
    for label, section in sections.items():
        if section and "train" in section and not isinstance(section["train"], dict):
            raise ConfigError(f"{path}: backbones.{label}.train must map train keys to values (e.g. lr: 0.01)")
    pairs = values.pop("pairs", None) or []
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ConfigError(f"{path}: pairs: each entry is [backbone, reference backbone], got {pair!r}")
    # a pair whose backbones were not picked (--backbones) is left out
    pairs = [[str(a), str(b)] for a, b in pairs if a in sections and b in sections]
    variant_pairs = values.pop("variant_pairs", None) or []
    for pair in variant_pairs:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ConfigError(f"{path}: variant_pairs: each entry is [variant, reference variant], got {pair!r}")
        if any(str(v) not in known for v in pair):
            raise ConfigError(f"{path}: variant_pairs: {pair!r} names a variant that is not one of {known}")
    variant_pairs = [[str(a), str(b)] for a, b in variant_pairs if a in names and b in names]
    return {"base": values, "backbones": sections, "seeds": [int(s) for s in seeds], "variants": names,
            "custom": custom, "baseline": baseline, "metrics": list(metrics), "by_popularity": list(grouped),
            "pairs": pairs, "variant_pairs": variant_pairs}


def _registered(name: str) -> bool:
    from llmrec.backbones.registry import list_backbones

    return name in list_backbones()


def reference_variant(ab: dict[str, Any]) -> str:
    return "plain" if "plain" in ab["variants"] else ab["variants"][0]


def run_config(ab: dict[str, Any], backbone: str, variant: str, seed: int, out: Path):
    from llmrec.backbones.registry import backbone_config
    from llmrec.config import RunConfig, from_dict

    values = copy.deepcopy(ab["base"])
    section = dict(ab["backbones"][backbone] or {})
    own_train = section.pop("train", None) or {}  # this backbone's train settings (e.g. its own lr)
    values["backbone"] = {**section, "name": section.get("name", backbone)}
    values.setdefault("train", {}).update(copy.deepcopy(own_train))
    if ab.get("custom"):
        for key, value in ab["custom"][variant].items():
            set_dotted(values, key, copy.deepcopy(value), what=f"variants.{variant}.{key}")
    else:
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
                if (folder / "results.json").exists():
                    check_same_config(cfg, folder)
                else:
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


IGNORED = {"train.out_dir", "train.progress", "train.resume"}


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix: values}
    out = {}
    for k, v in values.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def check_same_config(cfg, folder: Path) -> None:
    """A finished run is reused only if it was trained with this cell's config (paths aside)."""
    from llmrec.config import to_dict

    stored = _flat(json.loads((folder / "results.json").read_text()).get("config", {}))
    wanted = _flat(json.loads(json.dumps(to_dict(cfg))))
    differ = sorted(k for k in set(stored) | set(wanted)
                    if k not in IGNORED and stored.get(k, "<missing>") != wanted.get(k, "<missing>"))
    if differ:
        shown = ", ".join(f"{k}: {stored.get(k, '<missing>')!r} != {wanted.get(k, '<missing>')!r}" for k in differ[:5])
        raise ConfigError(f"{folder}/results.json was trained with another config ({shown}); "
                          "use another --out or remove the folder")


# what read_run reads (the last one only when the model predicts scenes): a run folder holding
# these, without its checkpoints, is enough to rebuild the table (benchmarks/keep_runs.py keeps them)
RUN_FILES = ("results.json", "test_per_user.npz", "metrics.jsonl", "test_next_scene.npz")


def read_run(folder: Path) -> dict[str, Any]:
    """A finished run folder's test metrics, per-user test metrics and timings."""
    results, per_user, metrics, scenes = RUN_FILES
    res = json.loads((folder / results).read_text())
    per = np.load(folder / per_user)
    epochs = [json.loads(x) for x in (folder / metrics).read_text().splitlines()]
    scene = folder / scenes
    scene_hits = dict(np.load(scene)) if scene.exists() else None
    return {"test": res["test"], "best_epoch": res["best_epoch"], "epochs": res["epochs"],
            "train_seconds": res["train_seconds"], "semantic": res.get("semantic"),
            "next_scene": res.get("next_scene"), "next_scene_hits": scene_hits,
            "by_popularity": res.get("by_popularity"),
            "data": {k: res.get(k) for k in ("dataset", "protocol", "derived", "caveats")},
            "epoch_seconds_median": statistics.median(r["epoch_seconds"] for r in epochs),
            "users": per["users"], "per_user": {k: per[k] for k in per.files if k not in ("users", "popularity_group")},
            "popularity_group": per["popularity_group"] if "popularity_group" in per.files else None}


def _difference(ab, label: str, ref: dict[str, np.ndarray], other: dict[str, np.ndarray], *,
                group: np.ndarray | None = None, **keys) -> dict[str, Any]:
    """Paired bootstraps over users of ``other - ref``; with ``group`` (popularity group of each
    user's held-out item), also within each group for the ``by_popularity`` metrics."""
    from llmrec.eval.bootstrap import paired_bootstrap
    from llmrec.eval.popularity import GROUPS

    d = {"label": label, **keys}
    for m in ab["metrics"]:
        boot = paired_bootstrap(ref[m], other[m])
        base = float(ref[m].mean())
        d[m] = {**boot, "relative": boot["mean_diff"] / base if base else float("nan")}
    if group is not None and ab.get("by_popularity"):
        d["by_popularity"] = {name: {m: paired_bootstrap(ref[m][group == g], other[m][group == g])
                                     for m in ab["by_popularity"]}
                              for g, name in enumerate(GROUPS) if (group == g).any()}
    return d


def _next_scene(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Next-scene accuracy over seeds, and the model minus repeat-the-last-scene, paired over users."""
    from llmrec.eval.bootstrap import paired_bootstrap

    acc = [r["next_scene"]["accuracy"] for r in runs]
    model = np.mean([r["next_scene_hits"]["model"] for r in runs], axis=0)
    repeat = runs[0]["next_scene_hits"]["repeat_last"]
    return {"accuracy": float(np.mean(acc)), "accuracy_std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
            "repeat_last": runs[0]["next_scene"]["repeat_last"], "majority": runs[0]["next_scene"]["majority"],
            "n": runs[0]["next_scene"]["n"], "vs_repeat_last": paired_bootstrap(repeat, model)}


def summarise(ab: dict[str, Any], cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    metrics, ref = ab["metrics"], reference_variant(ab)
    rows, diffs = [], []
    mean_user: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    users, group = None, None
    for backbone in ab["backbones"]:
        for variant in ab["variants"]:
            runs = [cells[f"{backbone}/{variant}/seed{s}"] for s in ab["seeds"]]
            for r in runs:
                if users is not None and not np.array_equal(users, r["users"]):
                    raise ValueError("test users differ between runs of one ablation (data changed?)")
                users = r["users"]
            missing = [m for m in metrics if m not in runs[0]["test"]]
            if missing:
                raise ConfigError(f"metrics {missing} were not computed (eval.ks / eval.metrics)")
            row = {"backbone": backbone, "variant": variant, "seeds": ab["seeds"],
                   "best_epochs": [r["best_epoch"] for r in runs],
                   "epoch_seconds_median": statistics.median(r["epoch_seconds_median"] for r in runs)}
            for m in metrics:
                vals = [r["test"][m] for r in runs]
                row[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                          "per_seed": vals}
            if all(r.get("next_scene") for r in runs):
                row["next_scene"] = _next_scene(runs)
            if ab.get("by_popularity") and all(r.get("by_popularity") for r in runs):
                row["by_popularity"] = {g: {"users": runs[0]["by_popularity"][g]["users"],
                                            **{m: float(np.mean([r["by_popularity"][g][m] for r in runs]))
                                               for m in ab["by_popularity"]}}
                                        for g in runs[0]["by_popularity"]}
            rows.append(row)
            wanted = set(metrics) | set(ab.get("by_popularity") or [])
            mean_user[backbone, variant] = {m: np.mean([r["per_user"][m] for r in runs], axis=0) for m in wanted}
            if all(r.get("popularity_group") is not None for r in runs):
                group = runs[0]["popularity_group"]
    for backbone in ab["backbones"]:
        for variant in ab["variants"]:
            if variant != ref:
                diffs.append(_difference(ab, f"{backbone}: {variant} − {ref}", mean_user[backbone, ref],
                                         mean_user[backbone, variant], group=group, backbone=backbone,
                                         variant=variant, vs=ref))
    if ab.get("baseline"):
        base = ab["baseline"]
        for variant in ab["variants"]:
            for backbone in ab["backbones"]:
                if backbone != base:
                    label = f"{backbone} − {base}" + (f" ({variant})" if len(ab["variants"]) > 1 else "")
                    diffs.append(_difference(ab, label, mean_user[base, variant], mean_user[backbone, variant],
                                             group=group, backbone=backbone, variant=variant, vs=base))
    for backbone, base in ab.get("pairs") or []:
        for variant in ab["variants"]:
            label = f"{backbone} − {base}" + (f" ({variant})" if len(ab["variants"]) > 1 else "")
            diffs.append(_difference(ab, label, mean_user[base, variant], mean_user[backbone, variant],
                                     group=group, backbone=backbone, variant=variant, vs=base))
    for variant, ref_variant in ab.get("variant_pairs") or []:
        for backbone in ab["backbones"]:
            diffs.append(_difference(ab, f"{backbone}: {variant} − {ref_variant}", mean_user[backbone, ref_variant],
                                     mean_user[backbone, variant], group=group, backbone=backbone,
                                     variant=variant, vs=ref_variant))
    return {"rows": rows, "differences": diffs, "seeds": ab["seeds"], "variants": ab["variants"],
            "backbones": list(ab["backbones"]), "baseline": ab.get("baseline"), "metrics": metrics,
            "config": ab["base"], "custom_variants": ab.get("custom") or None,
            "by_popularity_metrics": ab.get("by_popularity") or [],
            "n_test_users": int(len(next(iter(cells.values()))["users"])) if cells else 0,
            "data": next(iter(cells.values()))["data"] if cells else None}


def _row_name(r: dict[str, Any], report: dict[str, Any]) -> str:
    if report.get("custom_variants"):
        return r["backbone"] if len(report["variants"]) == 1 else f"{r['backbone']} / {r['variant']}"
    return r["backbone"] + {"plain": "", "esim": " + ESIM"}.get(r["variant"], f" + ESIM {r['variant']} only")


def markdown(report: dict[str, Any]) -> str:
    metrics = report.get("metrics", REPORTED)
    head = "| model | " + " | ".join(metrics) + " | best epochs | s/epoch |"
    lines = [f"Test, full ranking; mean ± std over seeds {report['seeds']}.", ""]
    data = report.get("data") or {}
    if data.get("protocol"):
        lines += [f"Data: {data['dataset']}; {data['protocol']}.", ""]
    for label, key in (("Derived signals", "derived"), ("Caveats", "caveats")):
        if data.get(key):
            lines += [f"{label}: " + "; ".join(data[key]) + ".", ""]
    lines += [head, "|---|" + "---|" * (len(metrics) + 2)]
    for r in report["rows"]:
        cells = [f"{r[m]['mean']:.4f} ± {r[m]['std']:.4f}" for m in metrics]
        epochs = ", ".join(map(str, r["best_epochs"]))
        lines.append(f"| {_row_name(r, report)} | " + " | ".join(cells) + f" | {epochs} | "
                     f"{r['epoch_seconds_median']:.2f} |")
    grouped = [r for r in report["rows"] if r.get("by_popularity")]
    if grouped:
        groups = list(grouped[0]["by_popularity"])
        users = ", ".join(f"{g} {grouped[0]['by_popularity'][g]['users']}" for g in groups)
        lines += ["", f"By popularity group of each user's held-out item (thirds of the training interactions; "
                  f"test users: {users}), mean over seeds.", "",
                  "| model | " + " | ".join(f"{m} {g}" for m in report["by_popularity_metrics"] for g in groups)
                  + " |", "|---|" + "---|" * (len(groups) * len(report["by_popularity_metrics"]))]
        for r in grouped:
            cells = [f"{r['by_popularity'][g][m]:.4f}" for m in report["by_popularity_metrics"] for g in groups]
            lines.append(f"| {_row_name(r, report)} | " + " | ".join(cells) + " |")
    scenes = [r for r in report["rows"] if r.get("next_scene")]
    if scenes:
        lines += ["", f"Next-scene accuracy on the test users whose held-out interaction has a scene "
                  f"({scenes[0]['next_scene']['n']}), mean ± std over seeds, beside repeating the last input "
                  "scene and the majority scene; model − repeat-last paired over users, 95% interval.", "",
                  "| model | next-scene acc | repeat last | majority | model − repeat last |", "|---|---|---|---|---|"]
        for r in scenes:
            ns, d = r["next_scene"], r["next_scene"]["vs_repeat_last"]
            lines.append(f"| {_row_name(r, report)} | {ns['accuracy']:.4f} ± {ns['accuracy_std']:.4f} | "
                         f"{ns['repeat_last']:.4f} | {ns['majority']:.4f} | {d['mean_diff']:+.4f} "
                         f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] |")
    if report.get("custom_variants"):
        lines += ["", "Variants (overrides of the run config): " + "; ".join(
            f"{name}: " + (", ".join(f"{k}={v}" for k, v in ov.items()) or "as configured")
            for name, ov in report["custom_variants"].items())]
    if report["differences"]:
        lines += ["", f"Paired bootstrap over {report['n_test_users']} test users (each user's metric averaged "
                  "over the seeds), 95% interval; relative change in brackets.", "",
                  "| difference | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for d in report["differences"]:
            cells = [f"{d[m]['mean_diff']:+.4f} [{d[m]['ci_low']:+.4f}, {d[m]['ci_high']:+.4f}] "
                     f"({d[m]['relative']:+.1%})" for m in metrics]
            lines.append(f"| {d['label']} | " + " | ".join(cells) + " |")
    grouped_diffs = [d for d in report["differences"] if d.get("by_popularity")]
    if grouped_diffs:
        groups = list(grouped_diffs[0]["by_popularity"])
        cols = [(m, g) for m in report["by_popularity_metrics"] for g in groups]
        lines += ["", "The same differences within each popularity group of the held-out item (paired over that "
                  "group's users, 95% interval).", "",
                  "| difference | " + " | ".join(f"{m} {g}" for m, g in cols) + " |", "|---|" + "---|" * len(cols)]
        for d in grouped_diffs:
            cells = [f"{b['mean_diff']:+.4f} [{b['ci_low']:+.4f}, {b['ci_high']:+.4f}]"
                     for b in (d["by_popularity"][g][m] for m, g in cols)]
            lines.append(f"| {d['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = report.get("metrics", REPORTED)
    ref = "plain" if "plain" in report["variants"] else report["variants"][0]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    # one line per label: two-line labels, rotated, run into their neighbours
    one = len({r["backbone"] for r in report["rows"]}) == 1
    labels = [r["variant"] if one else f"{r['backbone']} / {r['variant']}" for r in report["rows"]]
    for ax, m in zip(axes[0], metrics):
        means = [r[m]["mean"] for r in report["rows"]]
        stds = [r[m]["std"] for r in report["rows"]]
        ax.bar(range(len(means)), means, yerr=stds, capsize=3,
               color=["#999" if r["variant"] == ref else "#3a7" for r in report["rows"]])
        # rotated: longer variant names (esim_qwen_shuffled) overlap their neighbours when level
        ax.set_xticks(range(len(means)), labels, fontsize=7, rotation=30, ha="right")
        ax.set_title(m)
    fig.suptitle(f"test, mean ± std over seeds {report['seeds']}", fontsize=9)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)

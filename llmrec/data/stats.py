"""Dataset statistics for ``llmrec data stats``."""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrec.data.prepare import TEST, TRAIN, VALID, Prepared


def dataset_stats(data: Prepared) -> dict[str, Any]:
    n_users, n_items, m = data.n_users, data.n_items, len(data.item)
    counts = np.diff(data.offsets)
    item_counts = np.bincount(data.item, minlength=n_items + 1)[1:]
    behaviors = {b: int(((data.behaviors >> j) & 1).sum()) for j, b in enumerate(data.behavior_vocab)}
    sets: dict[str, int] = {}
    for mask, n in zip(*np.unique(data.behaviors, return_counts=True)):
        sets["+".join(b for j, b in enumerate(data.behavior_vocab) if mask >> j & 1)] = int(n)
    scenes = {}
    if len(data.scene_vocab) > 1:
        scenes = {data.scene_vocab[s]: int(n) for s, n in zip(*np.unique(data.scene, return_counts=True))}
    out = {
        "dataset": data.name,
        "users": n_users, "items": n_items, "interactions": m,
        "density": m / max(1, n_users * n_items),
        "interactions_per_user": {"mean": float(counts.mean()), "median": float(np.median(counts)),
                                  "min": int(counts.min()), "max": int(counts.max())},
        "interactions_per_item": {"mean": float(item_counts.mean()),
                                  "median": float(np.median(item_counts)),
                                  "min": int(item_counts.min()), "max": int(item_counts.max())},
        "has_timestamp": bool(data.meta.get("has_timestamp")),
        "behaviors": behaviors, "behavior_sets": sets, "target_behavior": data.target_behavior,
        "scenes": scenes,
        "split": {"protocol": data.meta.get("split_protocol"),
                  "train": int((data.split == TRAIN).sum()), "valid": int((data.split == VALID).sum()),
                  "test": int((data.split == TEST).sum())},
        "held_out_seen": held_out_seen(data),
        "derived": data.meta.get("derived", []),
        "caveats": data.meta.get("caveats", []),
        "dropped_rows": data.meta.get("dropped_rows", {}),
    }
    if data.explanations is not None:
        out["explanations"] = {k: int(v) for k, v in data.explanations["split"].value_counts().items()}
    return out


def held_out_seen(data: Prepared) -> dict[str, float]:
    """Share of each held-out split's rows whose item the user already has among its TRAINING rows
    (any behaviour): near 1, "which of my items comes back" is most of the task (a recent-items
    ranking is then hard to beat); 0 where the release removed such pairs."""
    key = data.user.astype(np.int64) * (data.n_items + 1) + data.item
    train = np.unique(key[data.split == TRAIN])
    out = {}
    for name, split in (("valid", VALID), ("test", TEST)):
        held = key[data.split == split]
        if len(held):
            out[name] = float(np.isin(held, train).mean())
    return out


def stats_markdown(stats: dict[str, Any]) -> str:
    lines = [f"## {stats['dataset']}", "", "| statistic | value |", "|---|---|"]
    for key in ("users", "items", "interactions"):
        lines.append(f"| {key} | {stats[key]:,} |")
    lines.append(f"| density | {stats['density']:.5f} |")
    for key in ("interactions_per_user", "interactions_per_item"):
        d = stats[key]
        lines.append(f"| {key.replace('_', ' ')} (mean / median / min / max) | "
                     f"{d['mean']:.1f} / {d['median']:.0f} / {d['min']} / {d['max']} |")
    lines.append(f"| timestamps | {'yes' if stats['has_timestamp'] else 'no'} |")
    lines.append(f"| target behaviour | {stats['target_behavior']} |")
    lines.append("| behaviours | " + ", ".join(f"{k}: {v:,}" for k, v in stats["behaviors"].items()) + " |")
    if len(stats["behavior_sets"]) > 1:
        lines.append("| behaviour sets | " + ", ".join(f"{{{k}}}: {v:,}" for k, v in
                                                       stats["behavior_sets"].items()) + " |")
    if stats["scenes"]:
        lines.append("| scenes | " + ", ".join(f"{k or '(none)'}: {v:,}" for k, v in stats["scenes"].items()) + " |")
    sp = stats["split"]
    lines.append(f"| split | {sp['protocol']}: train {sp['train']:,} / valid {sp['valid']:,} / "
                 f"test {sp['test']:,} |")
    if stats.get("held_out_seen"):
        lines.append("| held-out items the user already had in training (any behaviour) | " + ", ".join(
            f"{k} {v:.1%}" for k, v in stats["held_out_seen"].items()) + " |")
    if "explanations" in stats:
        lines.append("| explanation pairs | " + ", ".join(f"{k}: {v:,}" for k, v in
                                                        stats["explanations"].items()) + " |")
    if stats["derived"]:
        lines.append("| derived signals | " + "; ".join(stats["derived"]) + " |")
    for caveat in stats.get("caveats", []):
        lines.append(f"| caveat | {caveat} |")
    if stats["dropped_rows"]:
        lines.append("| dropped rows (reason: count) | " + ", ".join(
            f"{k}: {v:,}" for k, v in stats["dropped_rows"].items()) + " |")
    return "\n".join(lines)

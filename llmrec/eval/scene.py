"""Next-scene prediction accuracy of scene-aware backbones, beside two baselines.

Time-derived scenes are sticky (the next interaction is usually in the same daypart), so a
model's accuracy only means something next to ``repeat_last`` (predict the scene of the last
input step) and ``majority`` (the most frequent scene among the inputs of all examples; no
held-out labels are read). Examples whose held-out interaction has no scene are left out.
Per-example hits are kept for paired bootstraps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from llmrec.data.sequences import EvalExamples


@torch.no_grad()
def next_scene_accuracy(model, examples: EvalExamples, *, batch_size: int = 512,
                        device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """``model.scene_logits(batch) -> (B, S)`` (None when the model predicts no scene)."""
    if examples.target_scene is None or not hasattr(model, "scene_logits"):
        return None
    model.eval()
    keep = np.flatnonzero(examples.target_scene > 0)
    if not len(keep):
        return None
    preds = []
    for start in range(0, len(keep), batch_size):
        index = keep[start:start + batch_size]
        batch = {k: v.to(device) for k, v in examples.batch(index).items()}
        logits = model.scene_logits(batch)
        if logits is None:
            return None
        preds.append(logits.argmax(-1).cpu().numpy())
    pred = np.concatenate(preds)
    truth = examples.target_scene[keep]
    scenes = examples.inputs["scene"][keep]
    last = scenes[:, -1]
    counts = np.bincount(examples.inputs["scene"][examples.inputs["scene"] > 0])
    majority = int(counts.argmax()) if len(counts) else 0
    hits = {"model": (pred == truth).astype(float), "repeat_last": (last == truth).astype(float),
            "majority": (truth == majority).astype(float)}
    return {"n": int(len(keep)), "users": examples.users[keep],
            "accuracy": float(hits["model"].mean()), "repeat_last": float(hits["repeat_last"].mean()),
            "majority": float(hits["majority"].mean()), "hits": hits}

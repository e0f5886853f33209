"""Checkpoints that hold everything needed to rebuild and to resume: weights, optimiser, RNG
states, loop counters, the full run config and the dataset vocabularies. Written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from llmrec.atomic import atomic_file


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # our own files: they hold numpy RNG states and vocabularies, so not weights_only
    return torch.load(path, map_location=map_location, weights_only=False)


def load_model(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild a backbone from a checkpoint alone; returns (model, checkpoint dict)."""
    from llmrec.backbones.registry import build_backbone

    ckpt = load_checkpoint(path, map_location)
    model = build_backbone(ckpt["backbone"])
    model.load_state_dict(ckpt["model"])
    return model, ckpt

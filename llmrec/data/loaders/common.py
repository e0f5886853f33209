"""Small helpers shared by the loaders."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.data.io import LINE, BadRows
from llmrec.errors import DataError


def behavior_masks(labels: pd.Series, lines: pd.Series, vocab: list[str], *, path, column: str,
                   on_bad_rows: str, bad: BadRows, sep: str | None = None) -> np.ndarray:
    """Map behaviour labels (or ``sep``-separated label sets) to bit masks over ``vocab``.

    Unknown labels raise DataError naming the line, or give mask 0 (dropped by the caller) under skip.
    """
    index = {b: j for j, b in enumerate(vocab)}
    uniques = pd.unique(labels.astype(str))
    lookup: dict[str, int] = {}
    for label in uniques:
        mask = 0
        parts = label.split(sep) if sep else [label]
        for part in parts:
            part = part.strip()
            if not part:
                continue
            if part not in index:
                mask = -1
                break
            mask |= 1 << index[part]
        lookup[label] = mask
    masks = labels.astype(str).map(lookup).to_numpy(dtype=np.int64)
    unknown = masks <= 0
    if unknown.any():
        if on_bad_rows != "skip":
            i = int(np.argmax(unknown))
            raise DataError(f"behaviour {labels.iloc[i]!r} is not in the declared vocabulary {vocab}",
                            path=str(path), line=int(lines.iloc[i]), column=column)
        bad.add(f"unknown {column}", int(unknown.sum()))
    return masks


def keep_known(frame: pd.DataFrame, masks: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    keep = masks > 0
    return frame.loc[keep].reset_index(drop=True), masks[keep]


def declared_vocab(cfg_vocab: list[str] | None, default: list[str]) -> list[str]:
    return list(cfg_vocab) if cfg_vocab else list(default)


def drop_line(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    if frame is None:
        return None
    return frame.drop(columns=[LINE], errors="ignore").reset_index(drop=True)

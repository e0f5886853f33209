"""Amazon reviews as JSON lines (2014 and 2018 releases), with optional metadata.

Reviews: reviewerID, asin, overall, unixReviewTime, reviewText, summary. Metadata: asin, title and
either ``categories`` (2014: list of lists) or ``category`` (2018: list). ``path`` is the reviews
file, or a folder holding one ``*review*``/``reviews_*`` file and optionally one ``meta*`` file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.config import DataConfig
from llmrec.data.io import BadRows, read_jsonl, to_number
from llmrec.data.schema import RawData, canonical_frame
from llmrec.errors import DataError


def _find(folder: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        found = sorted(p for p in folder.glob(pattern) if not p.name.startswith("meta"))
        if found:
            return found[0]
    return None


def _flatten_categories(value) -> str:
    if isinstance(value, list):
        flat: list[str] = []
        for entry in value:
            flat.extend(entry if isinstance(entry, list) else [entry])
        return "|".join(dict.fromkeys(str(c) for c in flat if c))
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def load_amazon(cfg: DataConfig, bad: BadRows) -> RawData:
    path = Path(cfg.path)
    meta_path = None
    if path.is_dir():
        folder = path
        path = _find(folder, ("*review*.json*", "*.jsonl*", "*.json*"))
        if path is None:
            raise DataError("no reviews JSON lines file found", path=str(folder))
        metas = sorted(folder.glob("meta*.json*"))
        meta_path = metas[0] if metas else None
    frame = read_jsonl(path, required=["reviewerID", "asin"], on_bad_rows=cfg.on_bad_rows, bad=bad)
    for col in ("overall", "unixReviewTime"):
        if col not in frame:
            frame[col] = np.nan
        else:
            frame[col] = frame[col].fillna("").astype(str)
            frame = to_number(frame, col, path=path, on_bad_rows=cfg.on_bad_rows, bad=bad,
                              allow_empty=True)
    text = frame.get("reviewText", pd.Series("", index=frame.index)).fillna("").astype(str)
    summary = frame.get("summary", pd.Series("", index=frame.index)).fillna("").astype(str)
    review = np.where(summary.str.len() > 0, summary + ". " + text, text)
    inter = canonical_frame(len(frame), user=frame["reviewerID"].to_numpy(),
                            item=frame["asin"].to_numpy(), rating=frame["overall"].to_numpy(),
                            timestamp=frame["unixReviewTime"].to_numpy(dtype=float), review=review)
    sources, items = [str(path)], None
    if meta_path is not None:
        meta = read_jsonl(meta_path, required=["asin"], on_bad_rows=cfg.on_bad_rows, bad=bad)
        cats = meta["categories"] if "categories" in meta else meta.get("category")
        items = pd.DataFrame({
            "item": meta["asin"].astype(str),
            "title": meta.get("title", pd.Series("", index=meta.index)).fillna("").astype(str),
            "categories": cats.map(_flatten_categories) if cats is not None else "",
            "description": meta.get("description", pd.Series("", index=meta.index))
            .map(_flatten_categories),
        })
        sources.append(str(meta_path))
    base = "rated" if inter["rating"].notna().any() else "interact"
    return RawData(name=cfg.name or path.stem.split(".")[0], inter=inter, behavior_vocab=[base],
                   target_behavior=base, items=items, sources=sources)

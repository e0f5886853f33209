"""Generic CSV/Parquet with a column mapping in config.

``data.columns`` maps canonical fields to column names: user and item are required; timestamp,
rating, review, scene and behaviors are optional (behaviors: one label or a '|'-separated set per
row, over ``data.behaviors``). Files ending in ``.parquet`` are read with pyarrow, others as CSV
(``.tsv`` tab separated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.config import DataConfig
from llmrec.data.io import LINE, BadRows, read_delimited, require_values, to_number, to_timestamp
from llmrec.data.loaders.common import behavior_masks, keep_known
from llmrec.data.schema import RawData, canonical_frame
from llmrec.errors import ConfigError, DataError

FIELDS = ("user", "item", "timestamp", "rating", "review", "scene", "behaviors")


def load_table(cfg: DataConfig, bad: BadRows) -> RawData:
    path = Path(cfg.path)
    mapping = {"user": "user", "item": "item", **cfg.columns}
    unknown = [k for k in mapping if k not in FIELDS]
    if unknown:
        raise ConfigError(f"data.columns: unknown field(s) {unknown}; known: {list(FIELDS)}")
    if path.suffix == ".parquet":
        if not path.exists():
            raise DataError("file does not exist", path=str(path))
        frame = pd.read_parquet(path).astype(str)
        frame[LINE] = np.arange(1, len(frame) + 1)  # row numbers, 1-based
        missing = [c for c in mapping.values() if c not in frame.columns]
        if missing:
            raise DataError(f"missing column(s) {missing}", path=str(path))
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        frame = read_delimited(path, sep=sep, required=list(mapping.values()),
                               on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame = frame.rename(columns={v: k for k, v in mapping.items()})
    frame = require_values(frame, ["user", "item"], path=path, on_bad_rows=cfg.on_bad_rows, bad=bad)
    kw = dict(path=path, on_bad_rows=cfg.on_bad_rows, bad=bad)
    if "timestamp" in mapping:
        frame = to_timestamp(frame, "timestamp", **kw)
    if "rating" in mapping:
        frame = to_number(frame, "rating", **kw)
    vocab, target = ["interact"], "interact"
    masks = np.ones(len(frame), dtype=np.int64)
    if "behaviors" in mapping:
        if not cfg.behaviors:
            raise ConfigError("data.behaviors must declare the behaviour vocabulary when "
                              "data.columns.behaviors is set")
        vocab = list(cfg.behaviors)
        target = cfg.target_behavior or vocab[-1]
        masks = behavior_masks(frame["behaviors"], frame[LINE], vocab, path=path, column=mapping["behaviors"],
                               on_bad_rows=cfg.on_bad_rows, bad=bad, sep="|")
        frame, masks = keep_known(frame, masks)
    get = lambda c: frame[c].to_numpy() if c in mapping else None  # noqa: E731
    inter = canonical_frame(len(frame), user=get("user"), item=get("item"), timestamp=get("timestamp"),
                            rating=get("rating"), review=get("review"), scene=get("scene"),
                            behaviors=masks)
    return RawData(name=cfg.name or path.stem, inter=inter, behavior_vocab=vocab, target_behavior=target,
                   sources=[str(path)])

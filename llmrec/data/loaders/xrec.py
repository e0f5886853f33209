"""XRec-style explanation data: ``interactions.csv`` (user,item[,Time]) + ``explanations.jsonl``.

``explanations.jsonl`` rows: uid, iid, title, user_summary, item_summary, explanation. Where there
is no ``interactions.csv`` (XRec Amazon ships only ``interactions_val.csv``/``interactions_tst.csv``)
those files are read and the dataset is labelled as holding a subset of the interactions only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmrec.config import DataConfig
from llmrec.data.io import BadRows, read_delimited, read_jsonl, to_number, to_timestamp
from llmrec.data.schema import RawData, canonical_frame
from llmrec.errors import DataError


def load_xrec(cfg: DataConfig, bad: BadRows) -> RawData:
    folder = Path(cfg.path)
    if not folder.is_dir():
        raise DataError("expected a folder with interactions.csv and explanations.jsonl",
                        path=str(folder))
    paths = [folder / "interactions.csv"]
    derived = []
    if not paths[0].exists():
        paths = sorted(folder.glob("interactions_*.csv"))
        if not paths:
            raise DataError("no interactions.csv or interactions_*.csv", path=str(folder))
        derived.append("subset of interactions only (" + ", ".join(p.name for p in paths) + ")")
    frames = []
    for path in paths:
        frame = read_delimited(path, required=["user", "item"], on_bad_rows=cfg.on_bad_rows, bad=bad)
        for col in ("user", "item"):
            frame = to_number(frame, col, path=path, kind="int", on_bad_rows=cfg.on_bad_rows, bad=bad)
        if "Time" in frame:
            frame = to_timestamp(frame, "Time", path=path, on_bad_rows=cfg.on_bad_rows, bad=bad)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    ts = frame["Time"].to_numpy(dtype=float) if "Time" in frame else None
    inter = canonical_frame(len(frame), user=frame["user"].to_numpy(), item=frame["item"].to_numpy(),
                            timestamp=ts)
    sources = [str(p) for p in paths]
    explanations, items = None, None
    expl_path = folder / "explanations.jsonl"
    if not expl_path.is_file():
        raise DataError("no explanations.jsonl: an XRec folder holds interactions.csv and explanations.jsonl "
                        "(for interactions alone use source: table)", path=str(folder))
    if expl_path.exists():
        table = read_jsonl(expl_path, required=["uid", "iid", "explanation"],
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
        explanations = pd.DataFrame({
            "user": table["uid"].astype(str), "item": table["iid"].astype(str),
            "explanation": table["explanation"].astype(str),
            "title": table.get("title", pd.Series("", index=table.index)).fillna("").astype(str),
            "user_summary": table.get("user_summary", pd.Series("", index=table.index)).fillna(""),
            "item_summary": table.get("item_summary", pd.Series("", index=table.index)).fillna(""),
        })
        items = (explanations[["item", "title"]].drop_duplicates("item")
                 .assign(categories="", description=""))
        sources.append(str(expl_path))
    return RawData(name=cfg.name or f"xrec-{folder.name}", inter=inter,
                   behavior_vocab=["interact"], target_behavior="interact", items=items,
                   explanations=explanations, derived=derived, sources=sources)

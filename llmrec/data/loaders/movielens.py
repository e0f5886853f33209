"""MovieLens raw files: ml-100k (``u.data`` + ``u.item``) and ml-1m style (``ratings.dat`` + ``movies.dat``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmrec.config import DataConfig
from llmrec.data.io import LINE, BadRows, read_delimited, to_number
from llmrec.data.schema import RawData, canonical_frame
from llmrec.errors import DataError

ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _read_double_colon(path: Path, names: list[str], cfg: DataConfig, bad: BadRows) -> pd.DataFrame:
    """``a::b::c`` lines (ml-1m/10m); latin-1 as GroupLens ships them."""
    if not path.exists():
        raise DataError("file does not exist", path=str(path))
    rows, lines = [], []
    with path.open(encoding="latin-1") as handle:
        for lineno, text in enumerate(handle, start=1):
            text = text.rstrip("\n")
            if not text.strip():
                continue
            parts = text.split("::")
            if len(parts) != len(names):
                if cfg.on_bad_rows == "skip":
                    bad.add("wrong number of fields")
                    continue
                raise DataError(f"expected {len(names)} '::'-separated fields, found {len(parts)}",
                                path=str(path), line=lineno)
            rows.append(parts)
            lines.append(lineno)
    if not rows:
        raise DataError("file has no rows", path=str(path))
    frame = pd.DataFrame(rows, columns=names, dtype=str)
    frame[LINE] = lines
    return frame


def load_movielens(cfg: DataConfig, bad: BadRows) -> RawData:
    folder = Path(cfg.path)
    if folder.is_file():
        folder = folder.parent
    names = ["user", "item", "rating", "timestamp"]
    if (folder / "u.data").exists():
        inter_path = folder / "u.data"
        frame = read_delimited(inter_path, sep="\t", header=False, names=names,
                               required=names, on_bad_rows=cfg.on_bad_rows, bad=bad)
    elif (folder / "ratings.dat").exists():
        inter_path = folder / "ratings.dat"
        frame = _read_double_colon(inter_path, names, cfg, bad)
    else:
        raise DataError("neither u.data nor ratings.dat found", path=str(folder))
    for col, kind in (("rating", "float"), ("timestamp", "int")):
        frame = to_number(frame, col, path=inter_path, kind=kind, on_bad_rows=cfg.on_bad_rows, bad=bad)
    inter = canonical_frame(len(frame), user=frame["user"].to_numpy(), item=frame["item"].to_numpy(),
                            rating=frame["rating"].to_numpy(),
                            timestamp=frame["timestamp"].to_numpy(dtype=float))
    sources, items = [str(inter_path)], None
    if (folder / "u.item").exists():
        path = folder / "u.item"
        cols = ["item", "title", "release", "video", "url"] + ML100K_GENRES
        table = pd.read_csv(path, sep="|", header=None, names=cols, dtype=str, encoding="latin-1",
                            keep_default_na=False)
        flags = table[ML100K_GENRES].eq("1")
        items = pd.DataFrame({"item": table["item"], "title": table["title"],
                              "categories": flags.apply(lambda r: "|".join(r.index[r]), axis=1),
                              "description": table["release"]})
        sources.append(str(path))
    elif (folder / "movies.dat").exists():
        path = folder / "movies.dat"
        table = _read_double_colon(path, ["item", "title", "categories"], cfg, bad)
        items = pd.DataFrame({"item": table["item"], "title": table["title"],
                              "categories": table["categories"], "description": ""})
        sources.append(str(path))
    return RawData(name=cfg.name or folder.name, inter=inter, behavior_vocab=["rated"],
                   target_behavior="rated", items=items, sources=sources)

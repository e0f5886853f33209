"""RecBole atomic files (``.inter``, ``.item``, ``.user``; tab separated, typed headers).

The embedded default, MovieLens-100k, is read from the installed recbole wheel's data folder,
located with ``importlib.util.find_spec`` so that recbole itself is never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from llmrec.config import DataConfig
from llmrec.data.io import BadRows, read_delimited, to_number, to_timestamp
from llmrec.data.loaders.common import drop_line
from llmrec.data.schema import RawData, canonical_frame
from llmrec.errors import DataError

# Atomic field names -> canonical names, in order of preference.
USER_FIELDS = ("user_id",)
ITEM_FIELDS = ("item_id", "business_id")
TIME_FIELDS = ("timestamp", "time")
RATING_FIELDS = ("rating", "stars", "label")
REVIEW_FIELDS = ("review", "text", "review_text")
TITLE_FIELDS = ("movie_title", "title", "name", "item_name")
CATEGORY_FIELDS = ("class", "genre", "genres", "categories", "category")


def embedded_ml100k_dir() -> Path:
    """Folder of ml-100k inside the installed recbole wheel (``pip install --no-deps recbole==1.2.1``)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded MovieLens-100k comes from the recbole wheel, which is not "
                        "installed: run `pip install --no-deps recbole==1.2.1`")
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").exists():
        raise DataError(f"{folder}/ml-100k.inter not found in the recbole wheel")
    return folder


def load_embedded_ml100k(cfg: DataConfig, bad: BadRows) -> RawData:
    raw = _load_folder(embedded_ml100k_dir(), cfg, bad)
    raw.name = cfg.name or "ml-100k"
    return raw


def load_atomic(cfg: DataConfig, bad: BadRows) -> RawData:
    return _load_folder(Path(cfg.path), cfg, bad)


def _read_atomic(path: Path, cfg: DataConfig, bad: BadRows) -> pd.DataFrame:
    frame = read_delimited(path, sep="\t", on_bad_rows=cfg.on_bad_rows, bad=bad)
    # 'user_id:token' -> 'user_id'; remember the types for numeric parsing
    renamed = {c: c.split(":")[0] for c in frame.columns}
    types = {c.split(":")[0]: (c.split(":")[1] if ":" in c else "token") for c in frame.columns}
    frame = frame.rename(columns=renamed)
    frame.attrs["types"] = types
    return frame


def _pick(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in frame.columns), None)


def _load_folder(path: Path, cfg: DataConfig, bad: BadRows) -> RawData:
    if path.is_file():
        inter_path, folder = path, path.parent
    else:
        folder = path
        candidates = sorted(folder.glob("*.inter"))
        if not candidates:
            raise DataError("no .inter file in this folder", path=str(folder))
        inter_path = folder / f"{folder.name}.inter"
        if not inter_path.exists():
            inter_path = candidates[0]
    stem = inter_path.stem
    frame = _read_atomic(inter_path, cfg, bad)
    user_col, item_col = _pick(frame, USER_FIELDS), _pick(frame, ITEM_FIELDS)
    if user_col is None or item_col is None:
        raise DataError(f"needs fields user_id and item_id, found {list(frame.columns[:-1])}",
                        path=str(inter_path), line=1)
    from llmrec.data.io import require_values

    frame = require_values(frame, [user_col, item_col], path=inter_path,
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
    cols: dict = {"user": frame[user_col], "item": frame[item_col]}
    time_col = _pick(frame, TIME_FIELDS)
    if time_col:
        frame = to_timestamp(frame, time_col, path=inter_path, on_bad_rows=cfg.on_bad_rows, bad=bad)
    rating_col = _pick(frame, RATING_FIELDS)
    if rating_col:
        frame = to_number(frame, rating_col, path=inter_path, on_bad_rows=cfg.on_bad_rows, bad=bad)
    review_col = _pick(frame, REVIEW_FIELDS)
    cols = {"user": frame[user_col].to_numpy(), "item": frame[item_col].to_numpy(),
            "timestamp": frame[time_col].to_numpy() if time_col else None,
            "rating": frame[rating_col].to_numpy() if rating_col else None,
            "review": frame[review_col].to_numpy() if review_col else None}
    inter = canonical_frame(len(frame), **cols)
    sources = [str(inter_path)]

    items = None
    item_path = folder / f"{stem}.item"
    if item_path.exists():
        table = _read_atomic(item_path, cfg, bad)
        key = _pick(table, ITEM_FIELDS)
        if key is None:
            raise DataError("needs field item_id", path=str(item_path), line=1)
        title, cats = _pick(table, TITLE_FIELDS), _pick(table, CATEGORY_FIELDS)
        items = pd.DataFrame({
            "item": table[key].astype(str),
            "title": table[title] if title else "",
            # token_seq categories are space separated in RecBole
            "categories": table[cats].str.split().str.join("|") if cats else "",
            "description": table["release_year"].map(lambda y: f"released {y}" if y else "")
            if "release_year" in table else "",
        })
        sources.append(str(item_path))
    users = None
    user_path = folder / f"{stem}.user"
    if user_path.exists():
        users = drop_line(_read_atomic(user_path, cfg, bad))
        users = users.rename(columns={_pick(users, USER_FIELDS) or users.columns[0]: "user"})
        sources.append(str(user_path))
    base = "rated" if rating_col else "interact"
    return RawData(name=cfg.name or stem, inter=inter, behavior_vocab=[base], target_behavior=base, items=items, users=users, sources=sources)

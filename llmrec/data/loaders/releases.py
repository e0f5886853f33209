"""Derived files of published research releases (the ones in ../shared/data), each a named source.

=================  =================================================================  ==========
source             files (``data.path`` = the folder or the file)                       target
=================  =================================================================  ==========
retailrocket-cml   ``interactions_long.csv.gz``: user,item,behavior,timestamp,split      buy
                   (CML/KHGT release; view/cart/buy, unix seconds; test rows -1)
taobao-mbcgcn      ``interactions_long.csv.gz``: user,item,behavior,split (MB-CGCN;     buy
                   view/cart/buy, no timestamps)
alibaba-ecomm      ``ecomm_edge_train.txt``: user \\t item \\t type (1 click, 2 collect,  buy
                   3 cart, 4 buy) \\t date YYYYMMDD (DyHATR sample of the Tianchi log)
amazon-seqrec      ``interactions.csv.gz``: user_id,item_id,timestamp,seq_pos and        review
                   ``items.csv``: item_id,title (SeqRecBenchmark Amazon 2014 sets)
=================  =================================================================  ==========

The first three carry the release's own split (``RawData.split``), read by ``data.split=release``
(the default for them): see :func:`llmrec.data.prepare.release_split`. Every caveat of a release
goes into ``RawData.caveats`` and from there into ``data stats`` and every run's results.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.config import DataConfig
from llmrec.data.io import LINE, BadRows, read_delimited, to_number
from llmrec.data.loaders.common import behavior_masks, declared_vocab, keep_known
from llmrec.data.schema import RawData, canonical_frame
from llmrec.errors import DataError

MB_BEHAVIORS = ["view", "cart", "buy"]
ECOMM_TYPES = {"1": "click", "2": "collect", "3": "cart", "4": "buy"}
RELEASE_SPLITS = ("train", "test")


def _file(cfg: DataConfig, name: str) -> Path:
    """``data.path`` may name the release folder or the file itself."""
    path = Path(cfg.path)
    return path / name if path.is_dir() else path


def _split_column(frame: pd.DataFrame, path: Path, cfg: DataConfig, bad: BadRows) -> pd.DataFrame:
    value = frame["split"].str.strip()
    wrong = ~value.isin(RELEASE_SPLITS)
    if wrong.any():
        if cfg.on_bad_rows != "skip":
            i = int(np.argmax(wrong.to_numpy()))
            raise DataError(f"is {value.iloc[i]!r}, expected one of {list(RELEASE_SPLITS)}", path=str(path),
                            line=int(frame[LINE].iloc[i]), column="split")
        bad.add("bad split", int(wrong.sum()))
        frame, value = frame.loc[~wrong], value.loc[~wrong]
    return frame.assign(split=value).reset_index(drop=True)


def _long(cfg: DataConfig, bad: BadRows, *, name: str, timestamps: bool, caveats: list[str],
          pairs_held_out_whole: bool = False) -> RawData:
    """``interactions_long.csv.gz`` (user,item,behavior[,timestamp],split) of a multi-behaviour release."""
    path = _file(cfg, "interactions_long.csv.gz")
    cols = ["user", "item", "behavior"] + (["timestamp"] if timestamps else []) + ["split"]
    frame = read_delimited(path, required=cols, on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame = _split_column(frame, path, cfg, bad)
    if timestamps:
        frame = to_number(frame, "timestamp", path=path, kind="int", on_bad_rows=cfg.on_bad_rows, bad=bad)
    vocab = declared_vocab(cfg.behaviors, MB_BEHAVIORS)
    masks = behavior_masks(frame["behavior"], frame[LINE], vocab, path=path, column="behavior",
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame, masks = keep_known(frame, masks)
    ts = None
    if timestamps:
        ts = frame["timestamp"].to_numpy(dtype=float)
        ts[(frame["split"] == "test").to_numpy()] = np.nan  # test rows have no time (-1): placed last
    inter = canonical_frame(len(frame), user=frame["user"].to_numpy(), item=frame["item"].to_numpy(),
                            timestamp=ts, behaviors=masks)
    return RawData(name=cfg.name or name, inter=inter, behavior_vocab=vocab, target_behavior="buy",
                   sources=[str(path)], split=frame["split"].to_numpy(dtype=object), caveats=caveats,
                   pairs_held_out_whole=pairs_held_out_whole)


def load_retailrocket_cml(cfg: DataConfig, bad: BadRows) -> RawData:
    return _long(cfg, bad, name="retailrocket", timestamps=True, pairs_held_out_whole=True, caveats=[
        "RetailRocket (CML/KHGT release): test = the release's one held-out buy per user (no timestamp; "
        "placed after the user's training events)",
        "one timestamp per (user, item, behaviour), occurrence kept upstream undocumented "
        "(in 19% of pairs the kept view is later than the buy)",
    ])


def load_taobao_mbcgcn(cfg: DataConfig, bad: BadRows) -> RawData:
    return _long(cfg, bad, name="taobao", timestamps=False, caveats=[
        "Taobao (MB-CGCN/MuLe release): no timestamps and no order (view rows rebuilt from the "
        "release's adjacency, sorted by item id); a sequence order here is the file order, not time",
        "test = the release's held-out buy per user; its held-out view/cart rows are dropped, "
        "never used as training data",
    ])


def load_alibaba_ecomm(cfg: DataConfig, bad: BadRows) -> RawData:
    """Rows ordered by day, same-day rows in a seeded random order (the log has no finer time).

    Test: per user, the last buy in that order (a buy of the user's last buy day, ties broken by the
    seed). Exact duplicate rows (same user, item, type, day: 4,270 in the release) are dropped and
    counted, so a held-out buy is never also a training buy of the same day.
    """
    path = _file(cfg, "ecomm_edge_train.txt")
    names = ["user", "item", "type", "date"]
    frame = read_delimited(path, sep="\t", header=False, names=names, required=names,
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
    day = pd.to_datetime(frame["date"].str.strip(), format="%Y%m%d", errors="coerce", utc=True)
    invalid = day.isna().to_numpy()
    if invalid.any():
        if cfg.on_bad_rows != "skip":
            i = int(np.argmax(invalid))
            raise DataError(f"is {frame['date'].iloc[i]!r}, expected YYYYMMDD", path=str(path),
                            line=int(frame[LINE].iloc[i]), column="date")
        bad.add("bad date", int(invalid.sum()))
        frame, day = frame.loc[~invalid].reset_index(drop=True), day[~invalid].reset_index(drop=True)
    labels = frame["type"].str.strip().map(lambda t: ECOMM_TYPES.get(t, t))
    vocab = declared_vocab(cfg.behaviors, list(ECOMM_TYPES.values()))
    masks = behavior_masks(labels, frame[LINE], vocab, path=path, column="type",
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame = frame.assign(ts=(day - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(), mask=masks)
    frame = frame.loc[masks > 0]
    dup = frame.duplicated(["user", "item", "mask", "ts"])
    bad.add("exact duplicate row (same user, item, behaviour, day)", int(dup.sum()))
    frame = frame.loc[~dup]
    # seeded order inside a day, then by day: the rows' final order
    rng = np.random.default_rng(cfg.seed)
    frame = frame.iloc[rng.permutation(len(frame))].sort_values(["user", "ts"], kind="stable")
    target = 1 << vocab.index("buy") if "buy" in vocab else 0
    is_buy = (frame["mask"].to_numpy() & target) > 0
    last_buy = frame.loc[is_buy].groupby("user").tail(1).index
    split = pd.Series("train", index=frame.index, dtype=object)
    split.loc[last_buy] = "test"
    inter = canonical_frame(len(frame), user=frame["user"].to_numpy(), item=frame["item"].to_numpy(),
                            timestamp=frame["ts"].to_numpy(dtype=float), behaviors=frame["mask"].to_numpy())
    caveats = [
        "Alibaba EComm (DyHATR sample): day dates only; same-day order is a seeded random order "
        f"(seed {cfg.seed}); test = each user's last buy in that order; the release's "
        "link-prediction file is unused",
    ]
    return RawData(name=cfg.name or "alibaba-ecomm", inter=inter, behavior_vocab=vocab, target_behavior="buy",
                   sources=[str(path)], split=split.to_numpy(), caveats=caveats,
                   split_by="llmrec's own split of the log")


def load_amazon_seqrec(cfg: DataConfig, bad: BadRows) -> RawData:
    """Chronological by day; same-day reviews keep the release's ``seq_pos`` order."""
    path = _file(cfg, "interactions.csv.gz")
    cols = ["user_id", "item_id", "timestamp", "seq_pos"]
    frame = read_delimited(path, required=cols, on_bad_rows=cfg.on_bad_rows, bad=bad)
    kw = dict(path=path, kind="int", on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame = to_number(to_number(frame, "timestamp", **kw), "seq_pos", **kw)
    frame = frame.sort_values(["user_id", "seq_pos"], kind="stable").reset_index(drop=True)
    items = None
    items_path = path.parent / "items.csv"
    if items_path.exists():
        titles = read_delimited(items_path, required=["item_id", "title"], on_bad_rows=cfg.on_bad_rows, bad=bad)
        items = pd.DataFrame({"item": titles["item_id"].str.strip(),
                              "title": titles["title"].map(html.unescape), "categories": "",
                              "description": ""})
        unknown = ~frame["item_id"].isin(items["item"])
        if unknown.any():
            i = int(np.argmax(unknown.to_numpy()))
            raise DataError(f"item {frame['item_id'].iloc[i]!r} has no title in {items_path}", path=str(path),
                            line=int(frame[LINE].iloc[i]), column="item_id")
    inter = canonical_frame(len(frame), user=frame["user_id"].to_numpy(), item=frame["item_id"].to_numpy(),
                            timestamp=frame["timestamp"].to_numpy(dtype=float))
    caveats = ["Amazon 2014 (SeqRecBenchmark release): items are identified by title (no product ids); "
               "timestamps are days, same-day order follows the review file"]
    return RawData(name=cfg.name or path.parent.name, inter=inter, behavior_vocab=["review"],
                   target_behavior="review", items=items,
                   sources=[str(path)] + ([str(items_path)] if items is not None else []), caveats=caveats)

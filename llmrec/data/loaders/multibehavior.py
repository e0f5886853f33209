"""Public multi-behaviour logs. No package ships them; tests write small files in these formats.

=============  ===============================================================  ============
format         columns                                                          target
=============  ===============================================================  ============
taobao         UserBehavior.csv, no header: user,item,category,behavior,ts       buy
               (behavior in pv/fav/cart/buy)
tmall          IJCAI-15 user_log_format1.csv: user_id,item_id,cat_id,seller_id,  purchase
               brand_id,time_stamp (mmdd),action_type (0 click/1 cart/
               2 purchase/3 favourite)
retailrocket   events.csv: timestamp (ms),visitorid,event,itemid,transactionid   transaction
               (event in view/addtocart/transaction)
tenrec         user_id,item_id,click,follow,like,share[,...] 0/1 flags          click
=============  ===============================================================  ============

One row is one event; repeated (user, item) events stay separate rows unless ``data.dedup``
merges them into one step whose behaviour set is the union.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.config import DataConfig
from llmrec.data.io import BadRows, read_delimited, to_number, to_timestamp
from llmrec.data.loaders.common import behavior_masks, declared_vocab, keep_known
from llmrec.data.schema import RawData, canonical_frame
from llmrec.errors import DataError

TMALL_ACTIONS = {"0": "click", "1": "cart", "2": "purchase", "3": "favourite"}
TMALL_YEAR = 2014  # the log gives month and day only; the competition data covers 2014


def _finish(cfg, name, frame, masks, ts, vocab, target, path, category=None) -> RawData:
    inter = canonical_frame(len(frame), user=frame["user"].to_numpy(), item=frame["item"].to_numpy(),
                            timestamp=ts, behaviors=masks)
    items = None
    if category is not None:
        items = (pd.DataFrame({"item": inter["item"], "categories": category.to_numpy()})
                 .drop_duplicates("item").assign(title="", description=""))
    return RawData(name=cfg.name or name, inter=inter, behavior_vocab=vocab, target_behavior=target,
                   items=items, sources=[str(path)])


def load_taobao(cfg: DataConfig, bad: BadRows) -> RawData:
    names = ["user", "item", "category", "behavior", "timestamp"]
    frame = read_delimited(cfg.path, header=False, names=names, required=names,
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame = to_number(frame, "timestamp", path=cfg.path, kind="int", on_bad_rows=cfg.on_bad_rows, bad=bad)
    vocab = declared_vocab(cfg.behaviors, ["pv", "fav", "cart", "buy"])
    masks = behavior_masks(frame["behavior"], frame["_line"], vocab, path=cfg.path, column="behavior",
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame, masks = keep_known(frame, masks)
    return _finish(cfg, "taobao", frame, masks, frame["timestamp"].to_numpy(dtype=float), vocab,
                   "buy", cfg.path, frame["category"])


def load_tmall(cfg: DataConfig, bad: BadRows) -> RawData:
    cols = ["user_id", "item_id", "cat_id", "time_stamp", "action_type"]
    frame = read_delimited(cfg.path, required=cols, on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame = frame.rename(columns={"user_id": "user", "item_id": "item"})
    stamp = frame["time_stamp"].str.strip().str.zfill(4)
    parsed = pd.to_datetime(str(TMALL_YEAR) + stamp, format="%Y%m%d", errors="coerce", utc=True)
    invalid = parsed.isna().to_numpy()
    if invalid.any():
        if cfg.on_bad_rows != "skip":
            i = int(np.argmax(invalid))
            raise DataError(f"is {frame['time_stamp'].iloc[i]!r}, expected mmdd", path=str(cfg.path),
                            line=int(frame["_line"].iloc[i]), column="time_stamp")
        bad.add("bad time_stamp", int(invalid.sum()))
        frame, parsed = frame.loc[~invalid].reset_index(drop=True), parsed[~invalid]
    labels = frame["action_type"].str.strip().map(lambda a: TMALL_ACTIONS.get(a, a))
    vocab = declared_vocab(cfg.behaviors, ["click", "cart", "purchase", "favourite"])
    masks = behavior_masks(labels, frame["_line"], vocab, path=cfg.path, column="action_type",
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
    ts = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    keep = masks > 0
    frame, masks, ts = frame.loc[keep].reset_index(drop=True), masks[keep], ts[keep]
    return _finish(cfg, "tmall", frame, masks, ts, vocab, "purchase", cfg.path, frame["cat_id"])


def load_retailrocket(cfg: DataConfig, bad: BadRows) -> RawData:
    cols = ["timestamp", "visitorid", "event", "itemid"]
    frame = read_delimited(cfg.path, required=cols, on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame = frame.rename(columns={"visitorid": "user", "itemid": "item"})
    frame = to_number(frame, "timestamp", path=cfg.path, kind="int", on_bad_rows=cfg.on_bad_rows, bad=bad)
    vocab = declared_vocab(cfg.behaviors, ["view", "addtocart", "transaction"])
    masks = behavior_masks(frame["event"], frame["_line"], vocab, path=cfg.path, column="event",
                           on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame, masks = keep_known(frame, masks)
    ts = frame["timestamp"].to_numpy(dtype=float) / 1000.0  # milliseconds
    return _finish(cfg, "retailrocket", frame, masks, ts, vocab, "transaction", cfg.path)


def load_tenrec(cfg: DataConfig, bad: BadRows) -> RawData:
    frame = read_delimited(cfg.path, required=["user_id", "item_id"], on_bad_rows=cfg.on_bad_rows, bad=bad)
    frame = frame.rename(columns={"user_id": "user", "item_id": "item"})
    flags = [c for c in ("click", "follow", "like", "share") if c in frame.columns]
    vocab = declared_vocab(cfg.behaviors, flags)
    missing = [b for b in vocab if b not in frame.columns]
    if missing:
        raise DataError(f"missing behaviour column(s) {missing}", path=str(cfg.path), line=1)
    masks = np.zeros(len(frame), dtype=np.int64)
    for j, col in enumerate(vocab):
        frame = to_number(frame, col, path=cfg.path, kind="int", on_bad_rows=cfg.on_bad_rows, bad=bad)
    masks = np.zeros(len(frame), dtype=np.int64)
    for j, col in enumerate(vocab):
        value = frame[col].to_numpy()
        if not np.isin(value, (0, 1)).all():
            i = int(np.argmax(~np.isin(value, (0, 1))))
            raise DataError(f"is {int(value[i])}, expected 0 or 1", path=str(cfg.path),
                            line=int(frame["_line"].iloc[i]), column=col)
        masks |= value.astype(np.int64) << j
    empty = masks == 0
    bad.add("no behaviour flag set", int(empty.sum()))  # impressions without any action
    frame, masks = frame.loc[~empty].reset_index(drop=True), masks[~empty]
    ts = None
    if "timestamp" in frame.columns:
        frame = to_timestamp(frame, "timestamp", path=cfg.path, on_bad_rows=cfg.on_bad_rows, bad=bad)
        ts = frame["timestamp"].to_numpy(dtype=float)
    target = "click" if "click" in vocab else vocab[0]
    return _finish(cfg, "tenrec", frame, masks, ts, vocab, target, cfg.path)

"""Preprocessing: filter, de-duplicate, k-core, remap ids, order, split, cache.

The result, :class:`Prepared`, is a flat interaction table sorted by (user, time, input order)
with per-user offsets, plus the vocabularies that map dense ids back to the source's ids. User ids
are 0..U-1; item ids are 1..N with 0 reserved for padding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.atomic import atomic_dir
from llmrec.config import DataConfig, to_dict
from llmrec.data.schema import RawData
from llmrec.errors import ConfigError, DataError

FORMAT_VERSION = 4  # 2: the release split; 3: its valid row stays in time order; 4: split_by in the protocol
TRAIN, VALID, TEST = 0, 1, 2
PAD = "[PAD]"


@dataclass
class Prepared:
    name: str
    user: np.ndarray
    """(M,) int64 dense user id, sorted."""
    item: np.ndarray
    """(M,) int64 dense item id in 1..N."""
    timestamp: np.ndarray
    """(M,) float64 seconds, NaN when the source has none."""
    behaviors: np.ndarray
    """(M,) int64 bit mask over behavior_vocab."""
    scene: np.ndarray
    """(M,) int64 index into scene_vocab (0 = no scene)."""
    rating: np.ndarray
    """(M,) float64, NaN when absent."""
    split: np.ndarray
    """(M,) int8: 0 train, 1 valid, 2 test."""
    offsets: np.ndarray
    """(U+1,) rows of user u are offsets[u]:offsets[u+1]."""
    user_vocab: list[str]
    item_vocab: list[str]
    """item_vocab[0] is the padding token."""
    scene_vocab: list[str]
    behavior_vocab: list[str]
    target_behavior: str
    meta: dict[str, Any] = field(default_factory=dict)
    items: pd.DataFrame | None = None
    """Indexed by dense item id: title, categories, description."""
    users: pd.DataFrame | None = None
    explanations: pd.DataFrame | None = None
    """user, item (dense ids), explanation, ..., split (train/valid/test/zero_shot/excluded)."""

    @property
    def n_users(self) -> int:
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        """Number of real items (ids 1..n_items)."""
        return len(self.item_vocab) - 1

    def rows(self, u: int) -> slice:
        return slice(int(self.offsets[u]), int(self.offsets[u + 1]))

    def save(self, folder: str | Path, *, keep_existing: bool = False) -> None:
        """Write atomically: into a temporary sibling folder, then rename (``keep_existing``: a
        folder another process wrote first stays; see ``atomic_dir``)."""
        with atomic_dir(folder, keep_existing=keep_existing) as tmp:
            np.savez(tmp / "arrays.npz", user=self.user, item=self.item, timestamp=self.timestamp,
                     behaviors=self.behaviors, scene=self.scene, rating=self.rating, split=self.split,
                     offsets=self.offsets)
            vocab = dict(user=self.user_vocab, item=self.item_vocab, scene=self.scene_vocab,
                         behavior=self.behavior_vocab, target_behavior=self.target_behavior)
            (tmp / "vocab.json").write_text(json.dumps(vocab))
            (tmp / "meta.json").write_text(json.dumps({"name": self.name, **self.meta}, indent=1))
            for key in ("items", "users", "explanations"):
                table = getattr(self, key)
                if table is not None:
                    table.to_parquet(tmp / f"{key}.parquet")

    @classmethod
    def load(cls, folder: str | Path) -> "Prepared":
        folder = Path(folder)
        arrays = np.load(folder / "arrays.npz")
        vocab = json.loads((folder / "vocab.json").read_text())
        meta = json.loads((folder / "meta.json").read_text())
        tables = {k: pd.read_parquet(folder / f"{k}.parquet") if (folder / f"{k}.parquet").exists()
                  else None for k in ("items", "users", "explanations")}
        return cls(name=meta.pop("name"), **{k: arrays[k] for k in arrays.files},
                   user_vocab=vocab["user"], item_vocab=vocab["item"], scene_vocab=vocab["scene"],
                   behavior_vocab=vocab["behavior"], target_behavior=vocab["target_behavior"],
                   meta=meta, **tables)


def train_counts(data: Prepared) -> np.ndarray:
    """(n_items + 1,) events per item in the training split (index 0, padding, is 0)."""
    return np.bincount(data.item[data.split == TRAIN], minlength=data.n_items + 1)


def _sorted_ids(values: pd.Series) -> list[str]:
    """Unique ids in numeric order when they are all integers, else lexical."""
    unique = pd.unique(values)
    numeric = pd.to_numeric(pd.Series(unique), errors="coerce")
    if numeric.notna().all():
        return [str(v) for v in pd.Series(unique)[np.argsort(numeric.to_numpy(), kind="stable")]]
    return sorted(str(v) for v in unique)


def k_core(inter: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """Repeatedly drop users and items below the thresholds until none is left below."""
    while min_user > 1 or min_item > 1:
        users = inter.groupby("user")["item"].transform("size")
        items = inter.groupby("item")["user"].transform("size")
        keep = (users >= min_user) & (items >= min_item)
        if keep.all():
            break
        inter = inter.loc[keep]
    return inter


def dedup(inter: pd.DataFrame, keep: str, keys: list[str] | None = None) -> pd.DataFrame:
    """Collapse repeated (user, item) rows into one, keeping first or last; behaviour sets are OR-ed."""
    keys = keys or ["user", "item"]
    merged = inter.groupby(keys, sort=False)["behaviors"].transform(
        lambda s: np.bitwise_or.reduce(s.to_numpy()))
    inter = inter.assign(behaviors=merged.astype(np.int64))
    return inter.loc[~inter.duplicated(keys, keep=keep)]


def assign_split(counts: np.ndarray, offsets: np.ndarray, timestamp: np.ndarray,
                 cfg: DataConfig) -> tuple[np.ndarray, str]:
    """Return the (M,) split labels and a human-readable description of the protocol."""
    m = int(offsets[-1])
    split = np.zeros(m, dtype=np.int8)
    if cfg.split == "loo":
        # users with fewer than 3 interactions have nothing to hold out: train only
        ends = offsets[1:][counts >= 3]
        split[ends - 1] = TEST
        split[ends - 2] = VALID
        return split, "leave-one-out (last item test, second last valid)"
    if cfg.split == "temporal":
        if np.isnan(timestamp).any():
            raise DataError("the temporal split needs a timestamp on every interaction; "
                            "use data.split=random for data without time")
        cut_valid, cut_test = np.quantile(timestamp, [1 - cfg.valid_ratio - cfg.test_ratio,
                                                      1 - cfg.test_ratio])
        split[timestamp > cut_valid] = VALID
        split[timestamp > cut_test] = TEST
        return split, f"global temporal split (valid after t={cut_valid:.0f}, test after t={cut_test:.0f})"
    rng = np.random.default_rng(cfg.seed)
    for u in np.flatnonzero(counts >= 3):
        start, n = int(offsets[u]), int(counts[u])
        n_test = max(1, int(round(n * cfg.test_ratio)))
        n_valid = max(1, int(round(n * cfg.valid_ratio)))
        pick = rng.permutation(n)[: n_test + n_valid] + start
        split[pick[:n_test]] = TEST
        split[pick[n_test:]] = VALID
    return split, f"random hold-out per user (seed {cfg.seed}; no time order)"


def pick_valid(inter: pd.DataFrame, target_bit: int, how: str, seed: int,
               whole_pairs: bool) -> tuple[pd.DataFrame, str]:
    """Release split: one training target event of each user becomes valid (a user whose only
    training target event it is keeps their other behaviours for training).

    The valid row keeps its place in time: a valid example's input is the rows before it (later
    training rows still train the model), a test example's input is every row before the test row,
    in time order. (Moving valid behind the training rows instead made every test input end with the
    previous buy, a far easier next-buy cue than valid ever had: SASRec's test HR@10 was 2.7x its
    valid HR@10 on RetailRocket.) With
    ``whole_pairs`` (the release removed every training row of a test pair) the valid pair's other
    training rows go too, so valid is built like test (else a view of the valid item, kept in
    the input, makes valid far easier than test).
    """
    cand = inter.loc[((inter["behaviors"] & target_bit) > 0) & (inter["_split"] == TRAIN)]
    if how == "last":
        pick, text = cand.groupby("u").tail(1).index, "the last"
    else:
        pick, text = cand.groupby("u").sample(n=1, random_state=seed).index, f"a seeded random (seed {seed})"
    inter = inter.copy()
    inter.loc[pick, "_split"] = VALID
    if whole_pairs:
        valid_pairs = pd.MultiIndex.from_frame(inter.loc[pick, ["u", "i"]])
        same = pd.MultiIndex.from_frame(inter[["u", "i"]]).isin(valid_pairs) & (inter["_split"] == TRAIN).to_numpy()
        inter = inter.loc[~same]
        removed = int(same.sum())
        text += f" training {{target}} of each user (its pair's other training rows, {removed:,}, removed as the release did for test)"
    else:
        text += " training {target} of each user"
    return inter, text


def prepare_raw(raw: RawData, cfg: DataConfig) -> Prepared:
    inter = raw.inter.copy()
    n_raw = len(inter)
    inter["_order"] = np.arange(n_raw)
    if cfg.split == "auto":
        auto = "release" if raw.split is not None else "loo" if raw.has_timestamp else "random"
        cfg = dataclasses.replace(cfg, split=auto)
    release = cfg.split == "release"
    off_target = 0
    if release:
        if raw.split is None:
            raise ConfigError(f"data.split=release: source {cfg.source!r} carries no split of its own; "
                              "use loo, temporal or random")
        inter["_split"] = np.where(np.asarray(raw.split) == "test", TEST, TRAIN).astype(np.int8)
        # a held-out view/cart is not a target and must not become training data either
        drop = (inter["_split"] == TEST) & ((inter["behaviors"] & raw.target_bit) == 0)
        off_target = int(drop.sum())
        inter = inter.loc[~drop]
    if cfg.keep_behaviors == "target":
        inter = inter.loc[(inter["behaviors"] & raw.target_bit) > 0]
    # chronological per user, ties broken by input order; release: training rows before held-out ones
    by = ["user", "timestamp", "_order"] if raw.has_timestamp else ["user", "_order"]
    if release:
        by = ["user", "_split", *by[1:]]
    inter = inter.sort_values(by, kind="stable")
    if cfg.dedup != "none":
        inter = dedup(inter, cfg.dedup, keys=["user", "item", "_split"] if release else ["user", "item"])
    inter = k_core(inter, cfg.min_user_inter, cfg.min_item_inter)
    if inter.empty:
        raise DataError(f"no interactions left after filtering {raw.name} "
                        f"(k-core {cfg.min_user_inter}/{cfg.min_item_inter}, keep={cfg.keep_behaviors})")
    user_vocab = _sorted_ids(inter["user"])
    item_vocab = [PAD] + _sorted_ids(inter["item"])
    uid = pd.Series(np.arange(len(user_vocab)), index=user_vocab)
    iid = pd.Series(np.arange(len(item_vocab)), index=item_vocab)
    inter = inter.assign(u=uid.reindex(inter["user"]).to_numpy(), i=iid.reindex(inter["item"]).to_numpy())
    inter = inter.sort_values(["u"] + by[1:], kind="stable")
    scene_vocab = [""] + sorted(set(inter["scene"]) - {""})
    sid = {s: j for j, s in enumerate(scene_vocab)}
    user = inter["u"].to_numpy(np.int64)
    counts = np.bincount(user, minlength=len(user_vocab))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if release:
        how = cfg.valid_pick if cfg.valid_pick != "auto" else ("last" if raw.has_timestamp else "random")
        inter, picked = pick_valid(inter, raw.target_bit, how, cfg.seed, raw.pairs_held_out_whole)
        user = inter["u"].to_numpy(np.int64)
        counts = np.bincount(user, minlength=len(user_vocab))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        split = inter["_split"].to_numpy(np.int8)
        protocol = (f"{raw.split_by} (test: its held-out {raw.target_behavior} rows"
                    + (f"; {off_target:,} held-out rows of other behaviours dropped" if off_target else "")
                    + "); valid: " + picked.format(target=raw.target_behavior))
    timestamp = inter["timestamp"].to_numpy(np.float64)
    if not release:
        split, protocol = assign_split(counts, offsets, timestamp, cfg)
    if not raw.has_timestamp and cfg.split == "loo":
        protocol += " in input order (the source has no timestamps)"

    items = None
    if raw.items is not None:
        table = raw.items.drop_duplicates("item").set_index("item").reindex(item_vocab[1:])
        items = table[["title", "categories", "description"]].fillna("").reset_index()
        items.index = np.arange(1, len(item_vocab))
    users = None
    if raw.users is not None:
        users = raw.users.drop_duplicates("user").set_index("user").reindex(user_vocab).reset_index()
    explanations = None
    if raw.explanations is not None:
        from llmrec.data.explanations import split_explanations

        expl = raw.explanations
        known = expl["user"].isin(uid.index) & expl["item"].isin(iid.index)
        raw_ids = expl.loc[known, ["user", "item"]].to_numpy().astype(str)
        expl = expl.loc[known].assign(user=uid.reindex(expl.loc[known, "user"]).to_numpy(),
                                      item=iid.reindex(expl.loc[known, "item"]).to_numpy())
        explanations = split_explanations(expl, seed=cfg.seed, valid_ratio=cfg.explanation_valid_ratio,
                                          test_ratio=cfg.explanation_test_ratio,
                                          zero_shot_ratio=cfg.zero_shot_ratio,
                                          version=cfg.explanation_split_version,
                                          raw_user=raw_ids[:, 0], raw_item=raw_ids[:, 1])
    meta = {
        "derived": raw.derived, "caveats": raw.caveats, "split_protocol": protocol, "dropped_rows": raw.dropped_rows,
        "rows_read": n_raw, "sources": raw.sources, "has_timestamp": raw.has_timestamp,
        "config": to_dict(cfg), "format_version": FORMAT_VERSION,
    }
    return Prepared(
        name=raw.name, user=user, item=inter["i"].to_numpy(np.int64), timestamp=timestamp,
        behaviors=inter["behaviors"].to_numpy(np.int64),
        scene=inter["scene"].map(sid).to_numpy(np.int64), rating=inter["rating"].to_numpy(np.float64),
        split=split, offsets=offsets, user_vocab=user_vocab, item_vocab=item_vocab,
        scene_vocab=scene_vocab, behavior_vocab=raw.behavior_vocab,
        target_behavior=raw.target_behavior, meta=meta, items=items, users=users,
        explanations=explanations)


def _source_files(cfg: DataConfig) -> list[Path]:
    if cfg.source == "ml-100k":
        from llmrec.data.loaders.recbole import embedded_ml100k_dir

        return sorted(embedded_ml100k_dir().glob("ml-100k.*"))
    path = Path(cfg.path)
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def cache_key(cfg: DataConfig) -> str:
    """Hash of the source files (path, size, mtime) and every config field that shapes the data."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in to_dict(cfg).items()
                         if k not in ("cache_dir", "max_len", "window_stride")}, sort_keys=True).encode())
    h.update(str(FORMAT_VERSION).encode())
    for path in _source_files(cfg):
        stat = path.stat()
        h.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cache_folder(cfg: DataConfig) -> Path:
    """The processed-dataset cache entry of ``cfg`` (it may not exist yet)."""
    if cfg.source != "ml-100k" and cfg.path and not Path(cfg.path).exists():
        raise DataError("file or folder does not exist", path=cfg.path)
    return Path(cfg.cache_dir) / f"{cfg.name or cfg.source}-{cache_key(cfg)}"


def ensure_cached(cfg: DataConfig) -> Path:
    """Fill ``cfg``'s cache entry if it is missing, without loading one that exists; returns it."""
    folder = cache_folder(cfg)
    if not (folder / "meta.json").exists():
        prepare(cfg)
    return folder


def prepare(cfg: DataConfig, *, use_cache: bool = True) -> Prepared:
    """Load, preprocess and split ``cfg``'s source, through the processed-dataset cache."""
    from llmrec.data.loaders import load_raw

    folder = cache_folder(cfg)
    if use_cache and (folder / "meta.json").exists():
        return Prepared.load(folder)
    data = prepare_raw(load_raw(cfg), cfg)
    if use_cache:  # the key names the content, so a copy another process saved meanwhile is the same
        data.save(folder, keep_existing=True)
    return data

"""Deterministic explanation splits shared by every later stage.

For datasets with reference texts: first a zero-shot split (all pairs of a seeded share of the
explanation users); other users' pairs that touch an item of the zero-shot split are set aside as
``excluded`` (used nowhere), so zero-shot users and items have no text at all in the other splits;
then a seeded train/valid/test split of the remaining pairs. Later stages may read texts of
``train`` pairs only.

Version 2 (the default) decides membership by a seeded hash: a user is zero-shot when the hash of
its raw id falls under ``zero_shot_ratio``; a pair is test / valid / train by the hash of its raw
(user, item) ids. Adding or removing a row then changes only that row's split (and, for a zero-shot
user's row, the ``excluded`` status of other pairs on the same item); the shares are met in
expectation, not exactly. Version 1 (runs made before 2026-12) drew seeded permutations of the
dense ids, so one skipped input line could move many pairs; ``data.explanation_split_version: 1``
reproduces those published splits.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test", "zero_shot", "excluded")


def unit_hash(seed: int, kind: str, keys: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per key, fixed by (seed, kind, key) alone: blake2b, platform independent."""
    out = np.empty(len(keys))
    for n, key in enumerate(keys):
        digest = hashlib.blake2b(f"{seed}\x1f{kind}\x1f{key}".encode(), digest_size=8).digest()
        out[n] = int.from_bytes(digest, "big") / 2.0 ** 64
    return out


def split_explanations(expl: pd.DataFrame, *, seed: int, valid_ratio: float, test_ratio: float,
                       zero_shot_ratio: float, version: int = 2, raw_user: np.ndarray | None = None,
                       raw_item: np.ndarray | None = None) -> pd.DataFrame:
    """Add a ``split`` column (train / valid / test / zero_shot / excluded) to a user, item, text table.
    Version 2 hashes ``raw_user`` / ``raw_item`` (the dataset's own ids; default the table's)."""
    if version == 2:
        return _split_by_hash(expl, seed=seed, valid_ratio=valid_ratio, test_ratio=test_ratio,
                              zero_shot_ratio=zero_shot_ratio, raw_user=raw_user, raw_item=raw_item)
    expl = expl.reset_index(drop=True).copy()
    rng = np.random.default_rng(seed)
    users = np.array(sorted(expl["user"].unique()))
    n_zero = int(round(len(users) * zero_shot_ratio))
    zero_users = set(rng.permutation(users)[:n_zero].tolist())
    zero = expl["user"].isin(zero_users).to_numpy()
    zero_items = set(expl.loc[zero, "item"])
    excluded = ~zero & expl["item"].isin(zero_items).to_numpy()
    split = np.full(len(expl), "train", dtype=object)
    split[zero] = "zero_shot"
    split[excluded] = "excluded"
    rest = np.flatnonzero(~zero & ~excluded)
    order = rng.permutation(rest)
    n_test = int(round(len(rest) * test_ratio))
    n_valid = int(round(len(rest) * valid_ratio))
    split[order[:n_test]] = "test"
    split[order[n_test:n_test + n_valid]] = "valid"
    expl["split"] = split
    return expl


def _split_by_hash(expl: pd.DataFrame, *, seed: int, valid_ratio: float, test_ratio: float, zero_shot_ratio: float,
                   raw_user: np.ndarray | None, raw_item: np.ndarray | None) -> pd.DataFrame:
    expl = expl.reset_index(drop=True).copy()
    users = np.asarray(expl["user"] if raw_user is None else raw_user).astype(str)
    items = np.asarray(expl["item"] if raw_item is None else raw_item).astype(str)
    uniq, inverse = np.unique(users, return_inverse=True)
    zero = (unit_hash(seed, "zero_shot_user", uniq) < zero_shot_ratio)[inverse]
    zero_items = set(expl.loc[zero, "item"])
    excluded = ~zero & expl["item"].isin(zero_items).to_numpy()
    h = unit_hash(seed, "pair", np.char.add(np.char.add(users, "\x1f"), items))
    split = np.where(h < test_ratio, "test", np.where(h < test_ratio + valid_ratio, "valid", "train")).astype(object)
    split[zero] = "zero_shot"
    split[excluded] = "excluded"
    expl["split"] = split
    return expl

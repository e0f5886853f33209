"""Deterministic explanation splits shared by every later stage.

For datasets with reference texts: first a zero-shot split (all pairs of a seeded share of the
explanation users); other users' pairs that touch an item of the zero-shot split are set aside as
``excluded`` (used nowhere), so zero-shot users and items have no text at all in the other splits;
then a seeded train/valid/test split of the remaining pairs. Later stages may read texts of
``train`` pairs only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test", "zero_shot", "excluded")


def split_explanations(expl: pd.DataFrame, *, seed: int, valid_ratio: float, test_ratio: float,
                       zero_shot_ratio: float) -> pd.DataFrame:
    """Add a ``split`` column (train / valid / test / zero_shot / excluded) to a user, item, text table."""
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

"""Popularity views of a ranking: which items count as popular, and metrics by popularity group.

Deconfounded models can lose on a popularity-biased test set by construction (the held-out items
are themselves drawn with the bias), so their effect shows in where they win: grouped by the
popularity of each user's held-out item, and in how many recommendation slots go to the head.
"""

from __future__ import annotations

from typing import Any

import numpy as np

GROUPS = ("head", "mid", "tail")


def top_share_items(popularity: np.ndarray, share: float) -> np.ndarray:
    """(N+1,) bool: the ceil(share * N) most popular real items (by training count; ties by id)."""
    n = len(popularity) - 1
    order = np.argsort(-popularity[1:], kind="stable") + 1
    out = np.zeros(n + 1, dtype=bool)
    out[order[:int(np.ceil(share * n))]] = True
    return out


def popularity_groups(popularity: np.ndarray) -> np.ndarray:
    """(N+1,) group of each item, 0 head / 1 mid / 2 tail: items sorted by training count, cut so
    that each group holds about a third of the training interactions (item 0 and unseen items
    fall in the tail)."""
    pop = np.asarray(popularity, dtype=float)
    order = np.argsort(-pop[1:], kind="stable") + 1
    cum = np.cumsum(pop[order]) / max(pop[1:].sum(), 1.0)
    group = np.full(len(pop), 2, dtype=np.int64)
    group[order] = np.minimum((cum * 3 - 1e-9).astype(np.int64), 2)  # an item belongs where its mass ends
    group[order[0]] = 0
    return group


def by_popularity(per_user: dict[str, np.ndarray], first_target: np.ndarray,
                  popularity: np.ndarray) -> dict[str, dict[str, Any]]:
    """Mean of each per-user metric over the users whose (first) held-out item is in each group."""
    group = popularity_groups(popularity)[first_target]
    out = {}
    for g, name in enumerate(GROUPS):
        sel = group == g
        out[name] = {"users": int(sel.sum()), **{m: float(v[sel].mean()) if sel.any() else float("nan")
                                                for m, v in per_user.items()}}
    return out

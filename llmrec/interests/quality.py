"""How well a user's interests describe their items: coverage, computed in the encoder's space.

For user u with interest embeddings e_1..e_K (weight > 0) and item texts h_1..h_n (title and
categories, embedded by the same encoder): soft coverage = mean_i max_k cos(h_i, e_k), and
coverage@tau = share of items with max_k cos(h_i, e_k) >= tau. Training-history coverage says how
faithful the interests are; held-out (valid + test) coverage says whether they predict what the
user does next. Held-out items are read here only, never by the job itself.
"""

from __future__ import annotations

import numpy as np


def item_texts(data) -> list[str]:
    """'title (categories)' per dense item id 0..N (id 0 = padding, empty)."""
    from llmrec.interests.texts import item_fields

    titles, cats = item_fields(data)
    return [f"{t} ({c})" if c else t for t, c in zip(titles, cats)]


def coverage(interest_emb: np.ndarray, weights: np.ndarray, item_emb: np.ndarray, items: list[np.ndarray],
             *, tau: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (soft coverage, coverage@tau); NaN for users without interests or without items."""
    n = len(items)
    soft, hit = np.full(n, np.nan), np.full(n, np.nan)
    for u in range(n):
        keep = weights[u] > 0
        if not keep.any() or len(items[u]) == 0:
            continue
        best = (item_emb[items[u]] @ interest_emb[u, keep].T).max(1)  # (n_items,)
        soft[u], hit[u] = best.mean(), (best >= tau).mean()
    return soft, hit

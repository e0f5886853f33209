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


def personal_auc(interest_emb: np.ndarray, weights: np.ndarray, item_emb: np.ndarray, heldout: list[np.ndarray],
                 seen: list[np.ndarray]) -> np.ndarray:
    """Per-user AUC: P(an own held-out item scores above a held-out item of another user), the
    score of an item being max_k cos(item, e_k); items the user has seen are not negatives. It
    measures what coverage cannot: personal interests. The same interests for everyone score 0.5
    in expectation (own and others' held-out items come from the same distribution). NaN for
    users without interests or held-out items."""
    n = len(heldout)
    pool = np.concatenate(heldout) if n else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(n), [len(h) for h in heldout])
    out = np.full(n, np.nan)
    for u in range(n):
        keep = weights[u] > 0
        if not keep.any() or len(heldout[u]) == 0:
            continue
        scores = (item_emb @ interest_emb[u, keep].T).max(1)  # (N+1,)
        neg_items = pool[(owner != u) & ~np.isin(pool, seen[u])]
        if len(neg_items) == 0:
            continue
        pos, neg = scores[heldout[u]][:, None], scores[neg_items][None, :]
        out[u] = ((pos > neg).mean() + 0.5 * (pos == neg).mean())
    return out

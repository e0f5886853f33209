"""Edge hold-out and full-ranking reconstruction metrics for the behaviour tokenizer.

The tokenizer reconstructs the interaction graph, so its test is link prediction: a seeded,
uniform share of all (user, item) edges is held out (valid, test); a user's remaining edges form
the graph and are masked when ranking. Optionally a share of users is removed from training
entirely for the cold-start evaluation: their train/valid edges become ``cold`` (what assignment
may read) and their test edges ``cold_test``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmrec.eval.metrics import rank_metrics


@dataclass
class EdgeSplit:
    train: np.ndarray
    """(E, 2) user, item of the training graph."""
    valid: np.ndarray
    test: np.ndarray
    """Held-out edges of the users in training."""
    cold: np.ndarray
    """Train and valid edges of the cold-start users (known at assignment time); empty by default."""
    cold_test: np.ndarray
    """Test edges of the cold-start users (the targets after assignment)."""
    cold_users: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "valid": self.valid, "test": self.test, "cold": self.cold,
                "cold_test": self.cold_test, "cold_users": self.cold_users}

    @classmethod
    def from_arrays(cls, arrays) -> "EdgeSplit":
        return cls(**{k: np.asarray(arrays[k]) for k in ("train", "valid", "test", "cold", "cold_test",
                                                          "cold_users")})


def split_edges(users: np.ndarray, items: np.ndarray, n_users: int, *, valid_ratio: float,
                test_ratio: float, holdout_users: float = 0.0, seed: int = 0) -> EdgeSplit:
    """The uniform edge split does not depend on ``holdout_users`` (its own random stream), so a
    model trained without the cold users is tested on exactly the full model's test edges."""
    edges = np.unique(np.stack([users, items], 1), axis=0)  # one edge per (user, item)
    order = np.random.default_rng(seed).permutation(len(edges))
    n_test, n_valid = int(round(len(edges) * test_ratio)), int(round(len(edges) * valid_ratio))
    part = np.zeros(len(edges), np.int8)  # 0 train, 1 valid, 2 test
    part[order[:n_test]] = 2
    part[order[n_test:n_test + n_valid]] = 1
    rng_cold = np.random.default_rng([seed, 1])
    cold_users = np.sort(rng_cold.permutation(n_users)[: int(round(n_users * holdout_users))])
    cold = np.isin(edges[:, 0], cold_users)
    return EdgeSplit(train=edges[~cold & (part == 0)], valid=edges[~cold & (part == 1)],
                     test=edges[~cold & (part == 2)], cold=edges[cold & (part < 2)],
                     cold_test=edges[cold & (part == 2)], cold_users=cold_users)


def edge_keys(edges: np.ndarray, n_items: int) -> np.ndarray:
    return edges[:, 0].astype(np.int64) * (n_items + 1) + edges[:, 1]


@torch.no_grad()
def rank_edges(score_fn, targets: np.ndarray, known: list[np.ndarray], n_items: int, *,
               ks: list[int], batch_size: int = 1024, users: np.ndarray | None = None,
               device: torch.device | str = "cpu") -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray]:
    """Full ranking: for each user with target edges, score every item, mask ``known`` edges
    (training graph; validation edges when testing), rank the targets.

    score_fn: (B,) user ids tensor -> (B, N+1) scores. Returns mean metrics, per-user metrics and
    the evaluated users.
    """
    users = np.unique(targets[:, 0]) if users is None else np.sort(users)
    order = np.argsort(targets[:, 0], kind="stable")
    t_sorted = targets[order]
    per_user: dict[str, list[torch.Tensor]] = {}
    known_all = np.concatenate(known) if known else np.zeros((0, 2), np.int64)
    known_all = known_all[np.argsort(known_all[:, 0], kind="stable")]
    for s in range(0, len(users), batch_size):
        batch = users[s:s + batch_size]
        scores = score_fn(torch.as_tensor(batch, device=device)).float()  # (B, N+1)
        mask = torch.zeros_like(scores, dtype=torch.bool)
        targ = torch.zeros_like(mask)
        for arr, dense in ((known_all, mask), (t_sorted, targ)):
            lo, hi = np.searchsorted(arr[:, 0], [batch.min(), batch.max() + 1])
            sub = arr[lo:hi]
            sub = sub[np.isin(sub[:, 0], batch)]
            rows = torch.as_tensor(np.searchsorted(batch, sub[:, 0]))  # batch is sorted
            dense[rows.to(device), torch.as_tensor(sub[:, 1], device=device)] = True
        mask &= ~targ
        mask[:, 0] = True
        scores = scores.masked_fill(mask, float("-inf"))
        for name, values in rank_metrics(scores, targ, ks).items():
            per_user.setdefault(name, []).append(values.cpu())
    arrays = {k: torch.cat(v).numpy() for k, v in per_user.items()}
    return {k: float(v.mean()) for k, v in arrays.items()}, arrays, users

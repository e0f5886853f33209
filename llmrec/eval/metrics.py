"""Top-k ranking metrics from a score matrix, computed in torch, one batch of users at a time.

With several held-out targets per user (temporal or random splits): HR@k = 1 if any target is in
the top k; Recall@k = hits / number of targets; NDCG@k = DCG / ideal DCG with binary gains;
MRR@k = 1 / rank of the first hit (0 beyond k). With one target (leave-one-out) Recall = HR.
Ties in scores are broken by ``torch.topk``'s order, as in RecBole.
"""

from __future__ import annotations

import torch

METRICS = ("hr", "recall", "ndcg", "mrr")


def target_matrix(n_rows: int, n_cols: int, rows: torch.Tensor, cols: torch.Tensor,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    dense = torch.zeros(n_rows, n_cols, dtype=torch.bool, device=device)
    dense[rows.to(device), cols.to(device)] = True
    return dense


def rank_metrics(scores: torch.Tensor, targets: torch.Tensor, ks: list[int]) -> dict[str, torch.Tensor]:
    """Per-row metrics.

    scores: (B, N) with excluded entries already -inf; targets: (B, N) bool.
    Returns ``{"ndcg@10": (B,) tensor, ...}`` for every metric and k.
    """
    max_k = min(max(ks), scores.size(1))
    top = scores.topk(max_k, dim=1).indices  # (B, K)
    hits = targets.gather(1, top).float()  # (B, K)
    n_targets = targets.sum(1).float()  # (B,)
    discounts = 1.0 / torch.log2(torch.arange(2, max_k + 2, device=scores.device, dtype=torch.float))
    out: dict[str, torch.Tensor] = {}
    first = torch.where(hits.any(1), hits.argmax(1), torch.full_like(n_targets, max_k, dtype=torch.long))
    for k in ks:
        kk = min(k, max_k)
        h = hits[:, :kk]
        n_hit = h.sum(1)
        ideal = torch.cumsum(discounts[:kk], 0)[(n_targets.clamp(min=1, max=kk) - 1).long()]  # (B,)
        out[f"hr@{k}"] = (n_hit > 0).float()
        out[f"recall@{k}"] = n_hit / n_targets.clamp(min=1)
        out[f"ndcg@{k}"] = (h * discounts[:kk]).sum(1) / ideal
        out[f"mrr@{k}"] = torch.where(first < kk, 1.0 / (first.float() + 1), torch.zeros_like(n_hit))
    return out

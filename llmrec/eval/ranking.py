"""Ranking evaluation of any backbone over an :class:`EvalExamples` set.

Full ranking (default) scores every item and masks the user's history. Given the training item
counts (``popularity``), full ranking also reports exposure: ``pop10_share@k``, the share of a
user's top-k slots taken by the 10% most popular training items. Sampled evaluation ranks
each user's targets against ``n_negatives`` items drawn uniformly or by training popularity, never
from the user's history or targets; its results are labelled "sampled" because they are not
comparable with full-ranking figures. Memory is bounded by ``batch_size x n_items`` scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from llmrec.config import EvalConfig
from llmrec.data.sequences import EvalExamples
from llmrec.eval.metrics import rank_metrics, target_matrix
from llmrec.eval.popularity import top_share_items


@dataclass
class EvalResult:
    metrics: dict[str, float]
    """Mean over users of every metric@k."""
    per_user: dict[str, np.ndarray] = field(repr=False)
    """Metric -> (E,) values, aligned with ``users`` (for paired bootstrap)."""
    users: np.ndarray = field(repr=False)
    mode: str = "full"
    seconds: float = 0.0


def _sample_negatives(n: int, exclude: torch.Tensor, weights: torch.Tensor | None,
                      gen: torch.Generator) -> torch.Tensor:
    """(B, n) item ids per row, not excluded. exclude: (B, N+1) bool (column 0 always excluded)."""
    probs = (~exclude).float()
    if weights is not None:
        probs = probs * weights
    probs[:, 0] = 0
    short = (probs > 0).sum(1) < n
    if short.any():
        raise ValueError(f"sampled evaluation needs {n} negatives but a user has only "
                         f"{int((probs > 0).sum(1).min())} unseen items")
    return torch.multinomial(probs, n, replacement=False, generator=gen)  # (B, n)


@torch.no_grad()
def evaluate(model, examples: EvalExamples, cfg: EvalConfig, *, n_items: int,
             device: torch.device | str = "cpu", popularity: np.ndarray | None = None,
             progress: bool = False) -> EvalResult:
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    per_user: dict[str, list[torch.Tensor]] = {}
    gen = torch.Generator().manual_seed(cfg.seed)
    weights = None
    if cfg.mode == "sampled" and cfg.sampler == "popularity":
        if popularity is None:
            raise ValueError("popularity sampling needs the training item counts")
        weights = torch.as_tensor(popularity, dtype=torch.float)
    head = None
    if popularity is not None and cfg.mode == "full":
        head = torch.from_numpy(top_share_items(np.asarray(popularity), 0.1)).to(device)
    batches = range(0, len(examples), cfg.batch_size)
    for start_i in tqdm(batches, desc="evaluate", disable=None if progress else True, leave=False):
        index = np.arange(start_i, min(start_i + cfg.batch_size, len(examples)))
        batch = {k: v.to(device) for k, v in examples.batch(index).items()}
        scores = model.score(batch).float()  # (B, N+1)
        B = scores.size(0)
        hist = target_matrix(B, n_items + 1, *examples.history_coo(index), device=device)
        targ = target_matrix(B, n_items + 1, *examples.targets_coo(index), device=device)
        hist &= ~targ  # an item seen before and held out again stays rankable
        if cfg.mode == "sampled":
            neg = _sample_negatives(cfg.n_negatives, (hist | targ).cpu(), weights, gen)
            keep = targ.clone()
            keep.scatter_(1, neg.to(device), True)
            scores = scores.masked_fill(~keep, float("-inf"))
        else:
            scores = scores.masked_fill(hist, float("-inf"))
            scores[:, 0] = float("-inf")
        for name, values in rank_metrics(scores, targ, cfg.ks).items():
            per_user.setdefault(name, []).append(values.cpu())
        if head is not None:
            for k in cfg.ks:
                top = scores.topk(min(k, n_items), dim=1).indices  # (B, k)
                per_user.setdefault(f"pop10_share@{k}", []).append(head[top].float().mean(1).cpu())
    model.train(was_training)
    arrays = {k: torch.cat(v).numpy() for k, v in per_user.items()}
    metrics = {k: float(v.mean()) if len(v) else float("nan") for k, v in arrays.items()}
    return EvalResult(metrics, arrays, examples.users, cfg.mode, time.perf_counter() - start)

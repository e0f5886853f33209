"""The sampled softmax shared by the backbones: which items a batch is scored against, and the
correction that keeps the loss an estimate of the full softmax.

Sampled softmax (Bengio & Senecal 2008; Jean et al. 2015): each target row is scored against K
items drawn with replacement from a proposal q and shared by the batch; each drawn item's logit is
corrected by ``-log(K q_i)`` (logQ correction; Yi et al. 2019 apply it to in-batch negatives), and a
draw equal to the row's target is masked. Costs T x K instead of T x N.

Two proposals:

* ``uniform``: q_i = 1/N, so the correction is the constant log(N/K). Measured on MovieLens-100k
  (benchmarks/results/sampled_softmax_ml100k/): popular items are rarely drawn, so they are rarely
  pushed down, and the model over-ranks them; accuracy drops as K/N shrinks.
* ``popularity``: q_i proportional to (c_i + 1)^alpha, c_i the item's count in the training split
  (the +1 keeps every item drawable). alpha = 1 is the unigram distribution that in-batch negatives
  follow (Yi et al.); word2vec's 0.75 flattens it. The counts are set from the data by
  :func:`fit_samplers` before training; a sampler never fitted draws uniformly.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Proposal = Literal["uniform", "popularity"]


class NegativeSampler(nn.Module):
    """Draws the K shared items of a sampled softmax (K = 0 or K >= N: no sampling, full softmax)."""

    def __init__(self, n_items: int, k: int, proposal: Proposal = "uniform", alpha: float = 1.0):
        super().__init__()
        if proposal not in ("uniform", "popularity"):
            raise ValueError(f"sampler must be 'uniform' or 'popularity', got {proposal!r}")
        if alpha < 0:
            raise ValueError(f"sampler_alpha must be >= 0, got {alpha}")
        self.n_items, self.k, self.proposal, self.alpha = n_items, k, proposal, alpha
        # Not in the state dict: refitted from the data at every setup, so checkpoints stay as they were.
        self.register_buffer("log_q", torch.full((n_items + 1,), -math.log(max(n_items, 1))), persistent=False)
        self.fitted = False

    @classmethod
    def for_loss(cls, config) -> NegativeSampler:
        """The sampler of a backbone config with ``loss``, ``n_negatives``, ``sampler`` and
        ``sampler_alpha``: active only when its loss is ``sampled_ce``."""
        k = config.n_negatives if config.loss == "sampled_ce" else 0
        return cls(config.n_items, k, config.sampler, config.sampler_alpha)

    @property
    def active(self) -> bool:
        return 0 < self.k < self.n_items

    def fit(self, counts: np.ndarray) -> None:
        """Set the popularity proposal from training counts (length n_items + 1, index 0 = padding)."""
        if self.proposal != "popularity":
            return
        if len(counts) != self.n_items + 1:
            raise ValueError(f"item counts have length {len(counts)}, expected n_items + 1 = {self.n_items + 1}")
        w = (np.asarray(counts, dtype=np.float64)[1:] + 1.0) ** self.alpha
        log_q = np.concatenate([[-np.inf], np.log(w / w.sum())])
        self.log_q.copy_(torch.from_numpy(log_q).to(self.log_q))
        self.fitted = True

    def draw(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) item ids in 1..N and their (K,) logit corrections -log(K q_i)."""
        if self.proposal == "popularity" and self.fitted:
            neg = torch.multinomial(self.log_q[1:].exp(), self.k, replacement=True).to(device) + 1
            return neg, -(math.log(self.k) + self.log_q.to(device)[neg])
        neg = torch.randint(1, self.n_items + 1, (self.k,), device=device)
        return neg, torch.full((self.k,), math.log(self.n_items / self.k), device=device)


def fit_samplers(model: nn.Module, counts: np.ndarray) -> None:
    """Fit every :class:`NegativeSampler` inside ``model`` (plug-ins included) to training counts."""
    for m in model.modules():
        if isinstance(m, NegativeSampler):
            m.fit(counts)


def sampled_ce(pos: torch.Tensor, neg_logits: torch.Tensor, targets: torch.Tensor, neg: torch.Tensor,
               correction: torch.Tensor) -> torch.Tensor:
    """Per-row CE of the target logit ``pos`` (T,) against ``neg_logits`` (T, K) of the draws ``neg``
    (K,): each draw's logit plus its ``correction`` (K,), a draw equal to the row's target masked."""
    other = neg_logits + correction.unsqueeze(0)
    other = other.masked_fill(neg.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
    logits = torch.cat([pos.unsqueeze(1), other], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets), reduction="none")


def item_softmax_ce(h: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                    sampler: NegativeSampler | None = None) -> torch.Tensor:
    """Per-target cross-entropy of ``targets`` (T,) given states ``h`` (T, D) over item vectors
    ``items`` (N+1, D), row 0 = padding (never a class): the full softmax, or the sampled one when
    ``sampler`` is active."""
    if sampler is None or not sampler.active:
        logits = h @ items.T  # (T, N+1)
        logits[:, 0] = float("-inf")
        return F.cross_entropy(logits, targets, reduction="none")
    neg, correction = sampler.draw(h.device)
    return sampled_ce((h * items[targets]).sum(-1), h @ items[neg].T, targets, neg, correction)

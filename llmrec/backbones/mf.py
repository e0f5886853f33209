"""Matrix factorisation: a free vector per user and per item, score = dot product.

The non-sequential base (for model-agnostic plug-ins and as a floor for the sequential models).
It reads the same batches as the sequential backbones but only their ``users`` and ``targets``:
every training target of a user's window is a positive for that user, so no second batch
format is needed. (The first interaction of each user is an input only, never a target, so MF
trains on all training interactions but one per user.)

Two losses:

* ``ce`` (default): softmax cross-entropy of each positive over all items (full-softmax MF).
* ``sampled_ce``: the softmax against ``n_negatives`` items shared by the batch (``sampler``),
  logQ-corrected (as SASRec's), so MF and its plug-ins can share one loss family.
* ``bpr``: Bayesian personalised ranking (Rendle et al., UAI 2009) against ``n_negatives``
  uniformly sampled items per positive.

Regularisation is the trainer's AdamW weight decay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.backbones.base import Backbone
from llmrec.backbones.sampling import NegativeSampler, sampled_ce


@dataclass(kw_only=True)
class MFConfig:
    n_items: int = 0
    """Number of real items (filled from the data); ids 1..n_items, 0 is padding."""
    n_users: int = 0
    """Number of users (filled from the data)."""
    hidden: int = 64
    """Embedding width."""
    loss: Literal["ce", "sampled_ce", "bpr"] = "ce"
    """ce: full softmax over items; sampled_ce: against ``n_negatives`` items drawn by ``sampler``,
    shared by the batch (log-corrected, as SASRec's); bpr: pairwise against sampled negatives."""
    n_negatives: int = 1
    """Negatives per positive for bpr; items per batch for sampled_ce."""
    sampler: Literal["uniform", "popularity"] = "uniform"
    """Proposal of sampled_ce's items: uniform (log(N/K)-corrected) or popularity (training counts
    ^ ``sampler_alpha``, logQ-corrected); see llmrec.backbones.sampling."""
    sampler_alpha: float = 1.0
    """Exponent of the popularity proposal (1 = unigram, as in-batch negatives; 0.75 flatter)."""
    init_std: float = 0.1
    """Std of the normal initialisation of both embedding tables."""


class MF(Backbone):
    config_class = MFConfig
    requires = frozenset({"users"})
    order_free = True
    """Every position of a row holds the user's vector (plug-ins compute per-row scores once)."""

    def __init__(self, config: MFConfig):
        super().__init__(config)
        c = config
        if c.n_items <= 0 or c.n_users <= 0:
            raise ValueError("MFConfig.n_items and n_users must be set from the data")
        self.user_emb = nn.Embedding(c.n_users, c.hidden)
        self.item_emb = nn.Embedding(c.n_items + 1, c.hidden, padding_idx=0)
        self.sampler = NegativeSampler.for_loss(c)
        nn.init.normal_(self.user_emb.weight, std=c.init_std)
        nn.init.normal_(self.item_emb.weight, std=c.init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.user_emb(batch["users"])  # (B, D)

    def train_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L, D): the user's vector at every position (MF has no order)."""
        return self.encode(batch).unsqueeze(1).expand(-1, batch["targets"].size(1), -1)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss_and_user(batch)[0]

    def loss_and_user(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        user = self.encode(batch)  # (B, D)
        targets = batch["targets"]  # (B, L)
        valid = targets != 0
        sampled = self.sampler.active  # sampled_ce with 0 < K < N
        if self.config.loss != "bpr" and not sampled:
            logits = user @ self.item_emb.weight.T  # (B, N+1): one row serves all of a user's targets
            logits[:, 0] = float("-inf")
            logp = logits.log_softmax(-1).gather(1, targets)  # (B, L)
            return -logp[valid].mean(), user
        rows = valid.nonzero()[:, 0]
        if sampled:  # one (B, K) product per user row, shared by all of the row's targets
            t = targets[valid]
            neg, correction = self.sampler.draw(user.device)
            pos = (user[rows] * self.item_emb(t)).sum(-1)
            return sampled_ce(pos, (user @ self.item_emb.weight[neg].T)[rows], t, neg, correction).mean(), user
        u, pos = user[rows], self.item_emb(targets[valid])  # (T, D)
        neg = torch.randint(1, self.config.n_items + 1, (len(rows), self.config.n_negatives), device=u.device)
        diff = (u * pos).sum(-1, keepdim=True) - torch.einsum("td,tkd->tk", u, self.item_emb(neg))
        return -F.logsigmoid(diff).mean(), user

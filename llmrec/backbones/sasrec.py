"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item sequence.

Two training losses:

* ``ce`` (default): softmax cross-entropy over all items at every position, the strong modern
  form (Klenitskiy & Vasilev, RecSys 2023, "Turning Dross Into Gold Loss").
* ``bce``: the original sampled form, binary cross-entropy of each target against
  ``n_negatives`` uniformly sampled items per position.

Blocks are pre-LayerNorm with a final LayerNorm (the original code's layout); input and output
item embeddings are shared.

``behaviors: true`` is the usual multi-behaviour baseline ("SASRec + behaviour embedding"): the
sum of the embeddings of the behaviours in each step's set is added to the item embedding at
the input. Nothing else changes (the query is the sequence itself, the loss is the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.backbones.base import Backbone
from llmrec.backbones.layers import TransformerBlock, causal_mask, init_weights, to_bits
from llmrec.backbones.sampling import NegativeSampler, item_softmax_ce


@dataclass(kw_only=True)
class SASRecConfig:
    n_items: int = 0
    """Number of real items (filled from the data); ids 1..n_items, 0 is padding."""
    max_len: int = 50
    """Input sequence length (filled from data.max_len)."""
    hidden: int = 64
    """Embedding and model width."""
    n_layers: int = 2
    """Transformer blocks."""
    n_heads: int = 2
    """Attention heads."""
    inner: int = 256
    """Feed-forward width."""
    dropout: float = 0.2
    """Dropout on embeddings, attention and block outputs."""
    loss: Literal["ce", "sampled_ce", "bce"] = "ce"
    """ce: full softmax over items at every position; sampled_ce: softmax over the target and
    ``n_negatives`` items drawn by ``sampler``, shared by the batch (log-corrected; for large catalogues);
    bce: binary loss against sampled negatives."""
    n_negatives: int = 1
    """Negatives per position for bce; items per batch for sampled_ce (e.g. 256)."""
    sampler: Literal["uniform", "popularity"] = "uniform"
    """Proposal of sampled_ce's items: uniform (log(N/K)-corrected) or popularity (training counts
    ^ ``sampler_alpha``, logQ-corrected); see llmrec.backbones.sampling."""
    sampler_alpha: float = 1.0
    """Exponent of the popularity proposal (1 = unigram, as in-batch negatives; 0.75 flatter)."""
    behaviors: bool = False
    """Add a behaviour-set embedding (sum over the step's behaviours) to each input item."""
    n_behaviors: int = 0
    """Size of the behaviour vocabulary (filled from the data); used when ``behaviors`` is on."""
    init_std: float = 0.02
    """Std of the normal initialisation of linear and embedding weights."""


class SASRec(Backbone):
    config_class = SASRecConfig
    requires = frozenset({"items"})

    def __init__(self, config: SASRecConfig):
        super().__init__(config)
        c = config
        if c.n_items <= 0:
            raise ValueError("SASRecConfig.n_items must be set from the data")
        self.item_emb = nn.Embedding(c.n_items + 1, c.hidden, padding_idx=0)
        self.sampler = NegativeSampler.for_loss(c)
        self.pos_emb = nn.Embedding(c.max_len, c.hidden)
        if c.behaviors:
            if c.n_behaviors < 2:
                raise ValueError("SASRecConfig.behaviors needs a dataset with several behaviours "
                                 f"(n_behaviors={c.n_behaviors}; enable data.derive_behaviors?)")
            self.beh_emb = nn.Embedding(c.n_behaviors, c.hidden)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c.hidden, c.n_heads, c.inner, c.dropout)
                                    for _ in range(c.n_layers))
        self.ln = nn.LayerNorm(c.hidden)
        self.apply(partial(init_weights, std=c.init_std))

    def sequence(self, items: torch.Tensor, behaviors: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) item ids (and behaviour bit masks) -> (B, L, D) hidden states; position L-1 is the latest."""
        L = items.size(1)
        pos = torch.arange(L, device=items.device)
        x = self.item_emb(items) * (self.config.hidden ** 0.5) + self.pos_emb(pos)  # (B, L, D)
        if self.config.behaviors:
            x = x + to_bits(behaviors, self.config.n_behaviors).to(x.dtype) @ self.beh_emb.weight
        x = self.drop(x) * (items != 0).unsqueeze(-1)
        mask = causal_mask(items)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)

    def train_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L, D): the user state at each position, the one that predicts ``targets[:, t]``."""
        return self.sequence(batch["items"], batch.get("behaviors"))

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.sequence(batch["items"], batch.get("behaviors"))[:, -1]  # (B, D)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss_and_user(batch)[0]

    def loss_and_user(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.sequence(batch["items"], batch.get("behaviors"))  # (B, L, D)
        return self._loss(hidden, batch), hidden[:, -1]

    def _loss(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        targets = batch["targets"]  # (B, L)
        valid = targets != 0
        h = hidden[valid]  # (T, D)
        t = targets[valid]  # (T,)
        if self.config.loss in ("ce", "sampled_ce"):
            return item_softmax_ce(h, self.item_emb.weight, t, self.sampler).mean()
        neg = torch.randint(1, self.config.n_items + 1, (t.size(0), self.config.n_negatives),
                            device=t.device)  # (T, K)
        pos_logit = (h * self.item_emb(t)).sum(-1)  # (T,)
        neg_logit = torch.einsum("td,tkd->tk", h, self.item_emb(neg))  # (T, K)
        return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))

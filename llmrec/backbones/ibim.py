"""IBIM, the implicit behavioural multi-interest module of EIMF (Qiao et al., 2024), built as
ComiRec-SA (Cen et al., KDD 2020): self-attentive extraction of K interest vectors from the
item sequence.

    A = softmax_s(W2 tanh(W1 h_s))      (one attention distribution over positions per interest)
    v_k = sum_s A[s, k] h_s             (K interests, each a mix of the sequence's items)

Training is target-aware as in ComiRec: for each target item the interest with the largest inner
product with the target's embedding is selected (hard argmax, no gradient through the choice) and
scored against all items with softmax cross-entropy (the loss family SASRec uses here). ComiRec
trains one split point per sequence; here every position is a split point (causal extraction over
its prefix), which uses the same data SASRec sees. Scoring takes the max over interests (the
contract's base ``score``).

``extractor: dr`` is the dynamic-routing variant (ComiRec-DR / MIND): each item state is mapped
into every interest's space by its own linear map, and ``routing_iters`` rounds of routing-by-
agreement (softmax over interests, squash, logit += agreement) form the K capsules. Routing logits
start at zero; distinct per-interest maps break the symmetry, so encoding is deterministic
(ComiRec draws random initial logits instead). The routing coefficients are not back-propagated
through, as in both papers; the capsules are.

Options beyond ComiRec-SA, off by default: ``n_layers`` causal transformer blocks before the
extraction (ComiRec-SA has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.backbones.base import Backbone
from llmrec.backbones.layers import TransformerBlock, causal_mask, init_weights


@dataclass(kw_only=True)
class IBIMConfig:
    n_items: int = 0
    """Number of real items (filled from the data); ids 1..n_items, 0 is padding."""
    max_len: int = 50
    """Input sequence length (filled from data.max_len)."""
    hidden: int = 64
    """Embedding width (item and interest vectors)."""
    n_interests: int = 4
    """K, the number of interest vectors per user."""
    attn_hidden: int = 256
    """Width of the extraction's hidden layer (d_a in ComiRec-SA; its default is 4 x hidden)."""
    extractor: Literal["sa", "dr"] = "sa"
    """sa: self-attentive (ComiRec-SA); dr: dynamic routing (ComiRec-DR / MIND capsules)."""
    routing_iters: int = 3
    """Routing-by-agreement rounds of the dr extractor."""
    n_layers: int = 0
    """Causal transformer blocks before extraction (0 = ComiRec-SA)."""
    n_heads: int = 2
    """Attention heads of those blocks."""
    inner: int = 256
    """Feed-forward width of those blocks."""
    dropout: float = 0.2
    """Dropout on the input embeddings (and inside the blocks)."""
    init_std: float = 0.02
    """Std of the normal initialisation of linear and embedding weights."""


class IBIM(Backbone):
    config_class = IBIMConfig
    requires = frozenset({"items"})

    def __init__(self, config: IBIMConfig):
        super().__init__(config)
        c = config
        if c.n_items <= 0:
            raise ValueError("IBIMConfig.n_items must be set from the data")
        if c.n_interests < 1:
            raise ValueError("IBIMConfig.n_interests must be >= 1")
        self.item_emb = nn.Embedding(c.n_items + 1, c.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, c.hidden)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c.hidden, c.n_heads, c.inner, c.dropout)
                                    for _ in range(c.n_layers))
        self.ln = nn.LayerNorm(c.hidden) if c.n_layers else nn.Identity()
        if c.extractor == "sa":
            self.w1 = nn.Linear(c.hidden, c.attn_hidden, bias=False)
            self.w2 = nn.Linear(c.attn_hidden, c.n_interests, bias=False)
        else:  # one map per interest, stored as one (D -> K*D) linear layer
            self.maps = nn.Linear(c.hidden, c.n_interests * c.hidden, bias=False)
        self.apply(partial(init_weights, std=c.init_std))

    def _hidden(self, items: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, D) states the interests are mixed from."""
        L = items.size(1)
        pos = torch.arange(L, device=items.device)
        x = self.drop(self.item_emb(items) + self.pos_emb(pos)) * (items != 0).unsqueeze(-1)
        if self.blocks:
            mask = causal_mask(items)
            for block in self.blocks:
                x = block(x, mask)
        return self.ln(x)

    def interests(self, items: torch.Tensor, *, every_position: bool = False) -> torch.Tensor:
        """K interests from the whole input, (B, K, D); with ``every_position`` (B, L, K, D), where
        position t only mixes items 0..t (its causal prefix)."""
        h = self._hidden(items)  # (B, L, D)
        if self.config.extractor == "dr":
            return self._route(h, items, every_position)
        logits = self.w2(torch.tanh(self.w1(h)))  # (B, L, K)
        if every_position:
            # visible[b, t, s]: query position t may read key position s (causal, no padding)
            visible = causal_mask(items)[:, 0]  # (B, L, L)
            att = logits.unsqueeze(1).masked_fill(~visible.unsqueeze(-1), float("-inf"))  # (B, L, L, K)
            att = att.softmax(dim=2)
            return torch.einsum("btsk,bsd->btkd", att, h)  # (B, L, K, D)
        keys = (items != 0).unsqueeze(-1)  # (B, L, 1)
        keys = keys | ~keys.any(dim=1, keepdim=True)  # an all-padding row reads everything (no NaN)
        att = logits.masked_fill(~keys, float("-inf")).softmax(dim=1)  # (B, L, K)
        return torch.einsum("bsk,bsd->bkd", att, h)  # (B, K, D)

    def _route(self, h: torch.Tensor, items: torch.Tensor, every_position: bool) -> torch.Tensor:
        B, L, D = h.shape
        K = self.config.n_interests
        u = self.maps(h).view(B, L, K, D)  # (B, L, K, D): item s seen from interest k
        if every_position:
            visible = causal_mask(items)[:, 0]  # (B, T, S)
        else:
            keys = items != 0
            visible = (keys | ~keys.any(dim=1, keepdim=True)).unsqueeze(1)  # (B, 1, S)
        vis = visible.unsqueeze(-1).float()  # (B, T, S, 1)
        logits = torch.zeros(B, vis.size(1), L, K, device=h.device)  # (B, T, S, K)
        u_fixed = u.detach()
        for it in range(self.config.routing_iters):
            w = logits.softmax(dim=-1) * vis  # coupling of item s to interest k, for query t
            last = it == self.config.routing_iters - 1
            v = _squash(torch.einsum("btsk,bskd->btkd", w, u if last else u_fixed))  # gradient: last round only
            if not last:
                logits = logits + torch.einsum("btkd,bskd->btsk", v, u_fixed)
        return v if every_position else v[:, 0]  # (B, T, K, D) or (B, K, D)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.interests(batch["items"])  # (B, K, D)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight

    def loss_and_user(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        per_pos = self.interests(batch["items"], every_position=True)  # (B, L, K, D)
        targets = batch["targets"]  # (B, L)
        valid = targets != 0
        v = per_pos[valid]  # (T, K, D)
        t = targets[valid]  # (T,)
        with torch.no_grad():  # target-aware selection: the interest closest to the target
            pick = torch.einsum("tkd,td->tk", v, self.item_emb(t)).argmax(dim=1)  # (T,)
        user = v[torch.arange(v.size(0), device=v.device), pick]  # (T, D)
        logits = user @ self.item_emb.weight.T  # (T, N+1)
        logits[:, 0] = float("-inf")
        return F.cross_entropy(logits, t), per_pos[:, -1]  # last position: the whole window

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss_and_user(batch)[0]


def _squash(z: torch.Tensor) -> torch.Tensor:
    """Capsule squash: direction of z, length |z|^2 / (1 + |z|^2)."""
    n2 = (z * z).sum(-1, keepdim=True)
    return z * (n2 / (1 + n2) / torch.sqrt(n2 + 1e-9))

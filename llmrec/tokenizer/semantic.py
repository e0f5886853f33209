"""Multi-level semantic supervision of the behaviour tokens.

Macro: InfoNCE between the fused (user + item) macro tokens of a training pair and the frozen
sentence encoder's embedding of the pair's text; in-batch negatives, symmetric (both directions
averaged, the CLIP form: the summary does not say which direction BEAT uses).

Micro: an entity's intention phrases are an unordered set, so they cannot be paired with micro
tokens one to one. A share of the phrase slots is masked afresh every batch; one block of
self-attention over the slots (no positions: a set) and cross-attention to the entity's behaviour
tokens reconstructs them; the loss is the MSE on the masked slots (unit vectors on both sides).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(fused: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """fused, text: (B, C). Pairs on the diagonal are positives."""
    logits = F.normalize(fused, dim=-1) @ F.normalize(text, dim=-1).T / temperature  # (B, B)
    labels = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def random_mask(present: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, P) bool: round(ratio * n_present) of each row's present slots, at least 1, drawn at random."""
    noise = torch.rand(present.shape, generator=generator).to(present.device)
    noise = noise.masked_fill(~present, 2.0)
    rank = noise.argsort(1).argsort(1)  # (B, P) rank of each slot's noise
    n_mask = (present.sum(1).float() * ratio).round().clamp(min=1)
    return (rank < n_mask[:, None]) & present


class MicroReconstructor(nn.Module):
    def __init__(self, dim: int, n_heads: int = 4):
        super().__init__()
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, phrases: torch.Tensor, present: torch.Tensor, tokens: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """phrases (B, P, C) unit vectors; present, mask (B, P) bool; tokens (B, T, C).
        Returns the MSE over masked slots."""
        x = torch.where(mask[..., None], self.mask_token.expand_as(phrases), phrases)  # (B, P, C)
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, key_padding_mask=~present, need_weights=False)[0]
        h = self.norm2(x)
        x = x + self.cross_attn(h, tokens, tokens, need_weights=False)[0]
        x = x + self.ffn(self.norm3(x))
        pred = F.normalize(x, dim=-1)
        return F.mse_loss(pred[mask], phrases[mask])

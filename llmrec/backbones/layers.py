"""Transformer pieces shared by the sequential backbones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) linear and embedding weights, zero biases, zero padding row (``model.apply``)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


def to_bits(mask: torch.Tensor, n: int) -> torch.Tensor:
    """(...,) integer behaviour bit masks -> (..., n) bool membership."""
    return (mask.unsqueeze(-1) & (1 << torch.arange(n, device=mask.device))) != 0


def from_bits(bits: torch.Tensor) -> torch.Tensor:
    """(..., n) bool membership -> (...,) integer bit masks."""
    weights = 1 << torch.arange(bits.size(-1), device=bits.device)
    return (bits.long() * weights).sum(-1)


def causal_mask(items: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) bool mask, True = may attend: causal, never to padding, always to itself.

    Letting a padding query attend to itself keeps its softmax finite (no NaN rows), and real
    queries never see padding, so left padding cannot change a real position's output.
    """
    L = items.size(1)
    causal = torch.ones(L, L, dtype=torch.bool, device=items.device).tril()  # (L, L)
    keys = (items != 0)[:, None, None, :]  # (B, 1, 1, L)
    eye = torch.eye(L, dtype=torch.bool, device=items.device)
    return (causal & keys) | eye  # (B, 1, L, L)


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask``: bool (True = may attend) or an additive float bias, broadcast to (B, H, L, L)."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, L, D))  # (B, L, D)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + Attn(LN(x)), then x + FFN(LN(x)) with GELU."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(inner, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.drop(self.ffn(self.ln2(x)))

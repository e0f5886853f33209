"""Semantic Alignment Regularisation (BEAT), as in the reference code.

T: normalised LLM input embeddings of the explanation tokens (padding masked); Q: normalised
projected behaviour tokens of the pair. Each text token s picks its most similar behaviour token
j(s) with similarity v(s); Z_s = normalise(v(s) * Q_j(s)). The loss is the mean squared error
between Z Z^T and stop_grad(T T^T) over the valid (s, s') pairs of each explanation, so the
behaviour tokens inherit the LLM vocabulary's similarity structure.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sar_loss(text: torch.Tensor, mask: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``text`` (B, L, H) input embeddings of the targets, ``mask`` (B, L) 1 = real token,
    ``soft`` (B, K, H) the pair's soft tokens. Returns a scalar."""
    t = F.normalize(text.float(), dim=-1)
    q = F.normalize(soft.float(), dim=-1)
    sims = t @ q.transpose(1, 2)  # (B, L, K)
    v, j = sims.max(-1)  # (B, L)
    picked = torch.gather(q, 1, j.unsqueeze(-1).expand(-1, -1, q.size(-1)))  # (B, L, H)
    z = F.normalize(v.unsqueeze(-1) * picked, dim=-1)
    target = (t @ t.transpose(1, 2)).detach()  # (B, L, L)
    pair = (mask.unsqueeze(2) * mask.unsqueeze(1)).float()
    err = (z @ z.transpose(1, 2) - target) ** 2
    return (err * pair).sum() / pair.sum().clamp(min=1)

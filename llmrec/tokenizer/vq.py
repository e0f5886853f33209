"""Vector quantisation with codewords in the sentence encoder's space.

An input vector is mapped by a learned linear projection into the codeword space (the sentence
encoder's, 384-d for MiniLM) and L2-normalised; the codebook rows are L2-normalised too, so the
nearest codeword is the one of highest cosine. Straight-through estimator; loss =
q_latent (codebook) + beta * e_latent (commitment), as in VQ-VAE and BEAT's reference code.
Codes not hit during an epoch can be re-seeded from current encoder outputs (codebook reset, the
standard remedy for dead codes); usage counts and perplexity are kept for logging.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    def __init__(self, in_dim: int, code_dim: int, n_codes: int, *, beta: float = 0.5, quantize: bool = True):
        super().__init__()
        self.proj = nn.Linear(in_dim, code_dim)
        self.codebook = nn.Parameter(F.normalize(torch.randn(n_codes, code_dim), dim=-1))
        self.beta, self.quantize, self.n_codes = beta, quantize, n_codes
        self.register_buffer("usage", torch.zeros(n_codes))

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., code_dim), unit length."""
        return F.normalize(self.proj(z), dim=-1)

    def codewords(self) -> torch.Tensor:
        return F.normalize(self.codebook, dim=-1)  # (K, C)

    @torch.no_grad()
    def lookup(self, e: torch.Tensor) -> torch.Tensor:
        """Nearest code (highest cosine) of unit vectors (..., C) -> (...,) long (no gradient:
        argmax has none, and skipping autograd halves the cost of the largest matmul)."""
        return (e @ self.codewords().T).argmax(-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Returns (tokens (..., C), codes (...,) or None, vq loss)."""
        e = self.project(z)
        if not self.quantize:
            return e, None, e.new_zeros(())
        codes = self.lookup(e)
        q = self.codewords()[codes]
        loss = F.mse_loss(q, e.detach()) + self.beta * F.mse_loss(e, q.detach())
        if self.training:
            self.usage += torch.bincount(codes.flatten(), minlength=self.n_codes).to(self.usage)
        return e + (q - e).detach(), codes, loss

    @torch.no_grad()
    def init_from(self, e: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Seed the codebook with distinct random rows of projected inputs (unit vectors (M, C))."""
        e = e.reshape(-1, e.size(-1))
        pick = torch.randperm(e.size(0), generator=generator)[: self.n_codes]
        self.codebook.data[: len(pick)] = e[pick].to(self.codebook)

    @torch.no_grad()
    def reseed(self, e: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Replace codes with zero usage by random rows of ``e``; returns how many were replaced."""
        dead = torch.nonzero(self.usage == 0).flatten()
        if len(dead) == 0:
            return 0
        e = e.reshape(-1, e.size(-1))
        pick = torch.randint(0, e.size(0), (len(dead),), generator=generator)
        self.codebook.data[dead] = e[pick].to(self.codebook)
        return int(len(dead))

    def usage_stats(self) -> dict[str, float]:
        """Share of codes used and perplexity of the usage distribution since the last reset."""
        total = float(self.usage.sum())
        if total == 0:
            return {"usage": 0.0, "perplexity": 0.0}
        p = self.usage / total
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return {"usage": float((self.usage > 0).float().mean()), "perplexity": float(math.exp(entropy))}

    def reset_usage(self) -> None:
        self.usage.zero_()


def codes_stats(codes: torch.Tensor, n_codes: int) -> dict[str, float]:
    """Usage share and perplexity of a final assignment (any shape of code ids)."""
    counts = torch.bincount(codes.flatten(), minlength=n_codes).float()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"usage": float((counts > 0).float().mean()), "perplexity": float(math.exp(entropy)),
            "codes": n_codes}

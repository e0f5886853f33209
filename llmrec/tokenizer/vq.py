"""Vector quantisation whose codewords are read in the sentence encoder's space.

Lookup happens where it is cheap: an input vector (a 64-d micro chunk or the 320-d whole) is
L2-normalised and matched to the L2-normalised codebook rows by cosine. Straight-through
estimator; loss = q_latent (codebook) + beta * e_latent (commitment), as in VQ-VAE and BEAT's
reference code. A learned projection followed by L2 normalisation (``lift``) carries tokens and
codewords into the sentence encoder's space (BEAT: "codewords live in the text encoder's space, a
learned projection then L2 normalisation"), where the semantic losses compare them with text and
stage 2 reads them. Quantising in the small space and lifting only what the text terms need keeps
a step on 30k entities x 6 tokens cheap on a CPU.

Codes not hit during an epoch can be re-seeded from current encoder outputs (codebook reset, the
standard remedy for dead codes); usage counts and perplexity are kept for logging.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    def __init__(self, dim: int, code_dim: int, n_codes: int, *, beta: float = 0.5, quantize: bool = True):
        super().__init__()
        self.codebook = nn.Parameter(F.normalize(torch.randn(n_codes, dim), dim=-1))
        self.lift = nn.Linear(dim, code_dim)
        self.beta, self.quantize, self.n_codes = beta, quantize, n_codes
        self.register_buffer("usage", torch.zeros(n_codes))

    def codewords(self) -> torch.Tensor:
        """(K, dim) unit codewords in the lookup space."""
        return F.normalize(self.codebook, dim=-1)

    def text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., dim) tokens -> (..., code_dim) unit vectors in the sentence encoder's space."""
        return F.normalize(self.lift(tokens), dim=-1)

    def text_codewords(self) -> torch.Tensor:
        """(K, code_dim): the codebook as stage 2 and ``inspect`` read it."""
        return self.text(self.codewords())

    @torch.no_grad()
    def lookup(self, e: torch.Tensor) -> torch.Tensor:
        """Nearest code (highest cosine) of unit vectors (..., dim) -> (...,) long; argmax has no
        gradient, so autograd is skipped."""
        return (e @ self.codewords().T).argmax(-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Returns (tokens (..., dim) unit, codes (...,) or None, vq loss)."""
        e = F.normalize(z, dim=-1)
        if not self.quantize:
            return e, None, e.new_zeros(())
        codes = self.lookup(e)
        q = self.codewords()[codes]
        loss = F.mse_loss(q, e.detach()) + self.beta * F.mse_loss(e, q.detach())
        if self.training:
            self.usage += torch.bincount(codes.flatten(), minlength=self.n_codes).to(self.usage)
        return e + (q - e).detach(), codes, loss

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Seed the codebook with distinct random rows of the inputs (M, dim)."""
        z = F.normalize(z.reshape(-1, z.size(-1)), dim=-1)
        pick = torch.randperm(z.size(0), generator=generator)[: self.n_codes]
        self.codebook.data[: len(pick)] = z[pick].to(self.codebook)

    @torch.no_grad()
    def reseed(self, z: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Replace codes with zero usage by random rows of ``z``; returns how many were replaced."""
        dead = torch.nonzero(self.usage == 0).flatten()
        if len(dead) == 0:
            return 0
        z = F.normalize(z.reshape(-1, z.size(-1)), dim=-1)
        pick = torch.randint(0, z.size(0), (len(dead),), generator=generator)
        self.codebook.data[dead] = z[pick].to(self.codebook)
        return int(len(dead))

    def usage_stats(self) -> dict[str, float]:
        """Share of codes used and perplexity of the usage distribution since the last reset."""
        if float(self.usage.sum()) == 0:
            return {"usage": 0.0, "perplexity": 0.0}
        return _usage(self.usage)

    def reset_usage(self) -> None:
        self.usage.zero_()


def _usage(counts: torch.Tensor) -> dict[str, float]:
    """Share of codes with a nonzero count, and exp(entropy) of the count distribution."""
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"usage": float((counts > 0).float().mean()), "perplexity": float(math.exp(entropy))}


def codes_stats(codes: torch.Tensor, n_codes: int) -> dict[str, float]:
    """Usage share and perplexity of a final assignment (any shape of code ids)."""
    counts = torch.bincount(codes.flatten(), minlength=n_codes).float()
    return {**_usage(counts), "codes": n_codes}

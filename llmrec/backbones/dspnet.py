"""DSPnet (2025): scene-aware sequential recommendation with two parallel sequence networks.

A user's history is two aligned sequences: the items and the scenes (contexts) they were acted
on in. As built here:

1. Two parallel causal Transformer encoders, one over item (+ position) embeddings -> h_V, one
   over scene (+ position) embeddings -> h_S.
2. Sequence feature enhancement: z_V = MLP_V([h_V; h_S]), z_S = MLP_S([h_S; h_V]), each a
   ``enhance_layers``-layer GELU MLP (2, the paper's sweet spot) with a residual connection and
   LayerNorm.
3. Heads: the next item from z_V (dot product with the item embeddings) and the next scene from
   z_S (dot product with output scene embeddings), both softmax cross-entropy over all
   items / scenes (the same loss family as SASRec here; the paper uses BCE). The next scene is
   never an input at evaluation: the user vector is z_V at the last position.
4. Conditional Contrastive Regularisation (CCR): two augmented views of each history (each real
   step except the last dropped, in both sequences alike, with probability ``ccr_ratio``; for
   ``ccr_rows`` random sequences of the batch, to bound the cost);
   InfoNCE between their representations (z_V at the last position), the positive being the
   other view of the same history. The paper's "learned conditional weights from similarity
   scores" are vague; we weight each negative by ``(B - 1) softmax_j(beta * s_ij)`` of the
   detached learned similarities (hard-negative importance weights, Robinson et al., ICLR
   2021), so ``ccr_beta = 0`` is plain uniform InfoNCE (the CCR-vs-standard ablation).
5. Adversarial prior regularisation: a discriminator (MLP) tells samples of the prior N(0, I)
   from the latent [z_V; z_S] at the last position; the encoder gets ``adv_weight`` times the
   non-saturating generator loss -log D(z), the discriminator its own BCE loss on detached
   latents, with its own optimiser, after every main step (``adversary`` / ``adversary_loss``;
   the trainer runs the alternation). Both losses are logged per epoch.

Switches: ``scene_branch: false`` (no scene encoder, enhancement, scene head or scene latent:
SASRec with the CCR / prior terms), ``enhance_layers: 0`` (z = h), ``ccr_weight: 0``,
``adv_weight: 0`` (no discriminator at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.backbones.base import Backbone
from llmrec.backbones.layers import TransformerBlock, causal_mask, init_weights


@dataclass(kw_only=True)
class DSPnetConfig:
    n_items: int = 0
    """Number of real items (filled from the data); ids 1..n_items, 0 is padding."""
    n_scenes: int = 0
    """Scene vocabulary size including id 0 = no scene (filled from the data)."""
    max_len: int = 50
    """Input sequence length (filled from data.max_len)."""
    hidden: int = 64
    """Embedding and model width of both encoders."""
    n_layers: int = 2
    """Transformer blocks of each encoder."""
    n_heads: int = 2
    """Attention heads."""
    inner: int = 256
    """Feed-forward width."""
    dropout: float = 0.2
    """Dropout on embeddings, attention and block outputs."""
    scene_branch: bool = True
    """The scene encoder, enhancement, next-scene head and scene latent; false = item branch only."""
    enhance_layers: int = 2
    """Layers of each enhancement MLP over [h_V; h_S] (0 = no enhancement: z = h)."""
    scene_weight: float = 1.0
    """Weight of the next-scene cross-entropy."""
    ccr_weight: float = 0.1
    """Weight of the conditional contrastive regularisation (0 = off)."""
    ccr_ratio: float = 0.2
    """Probability that a step (not the last) is dropped in an augmented view."""
    ccr_beta: float = 1.0
    """Hardness of the negative weights (0 = uniform, plain InfoNCE)."""
    ccr_temperature: float = 0.5
    """tau of the CCR InfoNCE on cosine similarities."""
    ccr_rows: int = 32
    """CCR views are built for at most this many sequences of each batch (random; 0 = all): the
    views cost two more passes of both encoders, so this bounds the regulariser's price."""
    adv_weight: float = 0.01
    """Weight of the encoder's adversarial prior term (0 = no discriminator)."""
    disc_hidden: int = 64
    """Hidden width of the discriminator MLP."""
    init_std: float = 0.02
    """Std of the normal initialisation of linear and embedding weights."""


def _encoder(c: DSPnetConfig) -> nn.ModuleList:
    return nn.ModuleList(TransformerBlock(c.hidden, c.n_heads, c.inner, c.dropout) for _ in range(c.n_layers))


class Enhance(nn.Module):
    """z = LN(h + MLP([h; other])): an ``layers``-layer GELU MLP over the concatenation."""

    def __init__(self, hidden: int, layers: int, dropout: float):
        super().__init__()
        dims = [2 * hidden] + [hidden] * layers
        parts: list[nn.Module] = []
        for i in range(layers):
            parts.append(nn.Linear(dims[i], dims[i + 1]))
            if i < layers - 1:
                parts += [nn.GELU(), nn.Dropout(dropout)]
        self.mlp = nn.Sequential(*parts)
        self.ln = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return self.ln(h + self.mlp(torch.cat([h, other], -1)))


class DSPnet(Backbone):
    config_class = DSPnetConfig
    requires = frozenset({"items", "scenes", "target_scenes"})

    def __init__(self, config: DSPnetConfig):
        super().__init__(config)
        c = config
        if c.n_items <= 0:
            raise ValueError("DSPnetConfig.n_items must be set from the data")
        if c.scene_branch and c.n_scenes < 2:
            raise ValueError(f"DSPnet's scene branch needs scenes (n_scenes={c.n_scenes}); enable "
                             "data.derive_scenes or use a source with a scene column, or scene_branch=false")
        if not 0.0 <= c.ccr_ratio < 1.0:
            raise ValueError(f"DSPnetConfig.ccr_ratio must lie in [0, 1), got {c.ccr_ratio}")
        self.item_emb = nn.Embedding(c.n_items + 1, c.hidden, padding_idx=0)
        self.item_pos = nn.Embedding(c.max_len, c.hidden)
        self.item_enc = _encoder(c)
        self.item_ln = nn.LayerNorm(c.hidden)
        self.drop = nn.Dropout(c.dropout)
        if c.scene_branch:
            self.scene_emb = nn.Embedding(c.n_scenes, c.hidden, padding_idx=0)
            self.scene_pos = nn.Embedding(c.max_len, c.hidden)
            self.scene_enc = _encoder(c)
            self.scene_ln = nn.LayerNorm(c.hidden)
            self.scene_out = nn.Embedding(c.n_scenes, c.hidden)
            if c.enhance_layers > 0:
                self.enhance_item = Enhance(c.hidden, c.enhance_layers, c.dropout)
                self.enhance_scene = Enhance(c.hidden, c.enhance_layers, c.dropout)
        latent = c.hidden * (2 if c.scene_branch else 1)
        if c.adv_weight > 0:
            self.discriminator = nn.Sequential(nn.Linear(latent, c.disc_hidden), nn.LeakyReLU(0.2),
                                               nn.Linear(c.disc_hidden, 1))
        self.apply(partial(init_weights, std=c.init_std))
        self._latent: torch.Tensor | None = None
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    # -- encoders ----------------------------------------------------------------------------
    def _run(self, ids, emb, pos, blocks, ln, real, mask, scale: float) -> torch.Tensor:
        x = emb(ids) * scale + pos(torch.arange(ids.size(1), device=ids.device))
        x = self.drop(x) * real.unsqueeze(-1)
        for block in blocks:
            x = block(x, mask)
        return ln(x)

    def sequences(self, items: torch.Tensor, scenes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, L) items and scene ids -> enhanced (z_V, z_S), each (B, L, D); z_S None without scenes."""
        c = self.config
        real = items != 0
        mask = causal_mask(items)
        h_v = self._run(items, self.item_emb, self.item_pos, self.item_enc, self.item_ln, real, mask,
                        math.sqrt(c.hidden))
        if not c.scene_branch:
            return h_v, None
        h_s = self._run(scenes * real, self.scene_emb, self.scene_pos, self.scene_enc, self.scene_ln, real, mask,
                        math.sqrt(c.hidden))
        if c.enhance_layers == 0:
            return h_v, h_s
        return self.enhance_item(h_v, h_s), self.enhance_scene(h_s, h_v)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.sequences(batch["items"], batch.get("scenes", torch.zeros_like(batch["items"])))[0][:, -1]

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight

    def scene_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, n_scenes) next-scene scores from the last position (column 0, no scene, is -inf);
        None without the scene branch."""
        if not self.config.scene_branch:
            return None
        z_s = self.sequences(batch["items"], batch["scenes"])[1][:, -1]
        logits = z_s @ self.scene_out.weight.T
        logits[:, 0] = float("-inf")
        return logits

    # -- losses ------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss_and_user(batch)[0]

    def loss_and_user(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        items, targets = batch["items"], batch["targets"]
        scenes = batch.get("scenes", torch.zeros_like(items))
        z_v, z_s = self.sequences(items, scenes)
        valid = targets != 0
        logits = z_v[valid] @ self.item_emb.weight.T  # (T, N+1)
        logits[:, 0] = float("-inf")
        loss = F.cross_entropy(logits, targets[valid])
        if z_s is not None and c.scene_weight > 0:
            t_scene = batch["target_scenes"][valid]
            known = t_scene != 0  # a step without a scene has nothing to predict
            if known.any():
                s_logits = z_s[valid][known] @ self.scene_out.weight.T  # (T', S)
                s_logits[:, 0] = float("-inf")
                scene_loss = F.cross_entropy(s_logits, t_scene[known])
                loss = loss + c.scene_weight * scene_loss
                self._log("loss_scene", scene_loss)
        if c.ccr_weight > 0:
            ccr = self.ccr_loss(items, scenes)
            loss = loss + c.ccr_weight * ccr
            self._log("loss_ccr", ccr)
        if c.adv_weight > 0:
            latent = self._latent_of(z_v, z_s)
            self._latent = latent.detach()
            adv = F.binary_cross_entropy_with_logits(self.discriminator(latent), torch.ones(len(latent), 1,
                                                                                             device=latent.device))
            loss = loss + c.adv_weight * adv
            self._log("loss_adv", adv)
        return loss, z_v[:, -1]

    @staticmethod
    def _latent_of(z_v: torch.Tensor, z_s: torch.Tensor | None) -> torch.Tensor:
        return z_v[:, -1] if z_s is None else torch.cat([z_v[:, -1], z_s[:, -1]], -1)

    def augment(self, items: torch.Tensor, scenes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drop real steps (never the last) with probability ccr_ratio, in both sequences alike."""
        drop = torch.rand(items.shape, device=items.device) < self.config.ccr_ratio
        drop[:, -1] = False
        keep = ~drop
        return items * keep, scenes * keep

    def ccr_loss(self, items: torch.Tensor, scenes: torch.Tensor) -> torch.Tensor:
        c = self.config
        if 0 < c.ccr_rows < items.size(0):
            rows = torch.randperm(items.size(0), device=items.device)[:c.ccr_rows]
            items, scenes = items[rows], scenes[rows]
        views = [self.augment(items, scenes) for _ in range(2)]
        z, _ = self.sequences(torch.cat([v[0] for v in views]), torch.cat([v[1] for v in views]))
        a, b = F.normalize(z[:, -1], dim=-1).chunk(2)
        return conditional_info_nce(a, b, c.ccr_temperature, c.ccr_beta)

    # -- adversary (the trainer alternates) -------------------------------------------------
    def adversary(self) -> nn.Module | None:
        return getattr(self, "discriminator", None)

    def adversary_loss(self) -> torch.Tensor:
        """Discriminator BCE: prior samples N(0, I) -> 1, the last step's detached latents -> 0."""
        if self._latent is None:
            raise RuntimeError("adversary_loss needs a preceding loss() call")
        z = self._latent
        prior = torch.randn_like(z)
        logits = self.discriminator(torch.cat([prior, z]))
        labels = torch.cat([torch.ones(len(z), 1), torch.zeros(len(z), 1)]).to(z.device)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self._log("loss_disc", loss)
        return loss

    def _log(self, name: str, value: torch.Tensor) -> None:
        if self.training:
            self._sums[name] = self._sums.get(name, 0.0) + float(value.detach())
            self._counts[name] = self._counts.get(name, 0) + 1

    def extra_stats(self) -> dict[str, float]:
        """Mean scene, CCR, encoder-adversarial and discriminator losses since the last call."""
        out = {k: self._sums[k] / self._counts[k] for k in self._sums}
        self._sums, self._counts = {}, {}
        return out


def conditional_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, beta: float) -> torch.Tensor:
    """InfoNCE from view a to view b ((B, D), unit rows) with negatives weighted by
    ``(B - 1) softmax_j(beta * s_ij)`` of the detached similarities; symmetrised over a->b, b->a."""
    if a.size(0) < 2:  # no negatives
        return a.sum() * 0.0

    def one_way(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = x @ y.T  # (B, B) cosine
        n = s.size(0)
        eye = torch.eye(n, dtype=torch.bool, device=s.device)
        w = (beta * s.detach()).masked_fill(eye, float("-inf")).softmax(-1) * (n - 1)  # (B, B), 0 on diagonal
        logits = s / temperature
        pos = logits.diagonal()
        neg = (w.clamp(min=1e-30).log() + logits).masked_fill(eye, float("-inf"))
        return (torch.logsumexp(torch.cat([pos.unsqueeze(1), neg], 1), 1) - pos).mean()

    return 0.5 * (one_way(a, b) + one_way(b, a))

"""BLADE (Li et al., 2025): multi-behaviour sequential recommendation with dual item-behaviour fusion.

Each step carries a SET of concurrent behaviours (a bit mask over the dataset's behaviour
vocabulary). The model, as built here:

1. Behaviour-set encoding (Eq. 1): a softmax over the behaviours present in the set, scored by a
   learned vector, weights their embeddings: ``s = sum_b softmax_b(w . e_b) e_b``.
2. Early fusion: item and set embeddings combined at the input (``sum``, ``concat`` + linear, or a
   sigmoid ``gate``), + positions, causal Transformer blocks -> F.
3. Intermediate fusion: item + position embeddings -> Behaviour-Aware Self-Attention (scores
   plus a learned per-head scale times the similarity of the two steps' behaviour-set
   embeddings) -> Behaviour-Guided Mixture-of-Experts (a softmax gate on the step's set
   embedding mixes E feed-forward experts) -> O.
4. ``U = alpha O + (1 - alpha) F``; a cross-attention whose query is the TARGET behaviour set's
   embedding reads U causally, then a feed-forward block gives the user vector; scores are dot
   products with the item embeddings. In training the query at each position is the set of the
   step being predicted; at evaluation it is the fixed target behaviour for every user
   (``target_behavior``), never the held-out step's own set.
5. Behaviour-richness weighting: each position's cross-entropy is weighted by
   ``|target set| / |B|``, normalised by the summed weights.

6. Behaviour-level augmentations (``blade_aug``: co-occurrence addition, frequency masking,
   auxiliary flipping; ratio rho) make two views of each training sequence's behaviour sets; an
   NT-Xent loss between the views' fused representations (U at the last position) is added with
   weight lambda (``cl_weight``, default 0.1, the paper's best). Item ids are never augmented.

Where the paper leaves details open we take the standard choice and say so: the attention bias is
additive (scores + lambda_h * cos(s_i, s_j)), the MoE gate is dense (all experts, softmax
weights on the layer-normalised set embedding; no top-k), experts are two-layer GELU FFNs
(evaluated as one wide matmul pair, which is exactly the gated sum), and the augmentation details
are listed in ``blade_aug``.

Ablation switches: ``early_fusion: none``, ``intermediate_fusion: false``, ``richness_weight:
false``, ``n_experts: 1`` (plain FFN), ``augmentations`` without an entry (w/o that
augmentation), ``cl_weight: 0`` (w/o the contrastive loss; no views are built). ``extra_stats``
reports the mean gate weight of each expert over the last epoch, to spot a degenerate router, and
the mean contrastive loss.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.backbones.base import Backbone
from llmrec.backbones.blade_aug import AUGMENTATIONS, augment_view, nt_xent
from llmrec.backbones.layers import SelfAttention, TransformerBlock, causal_mask, init_weights, to_bits
from llmrec.backbones.sampling import NegativeSampler, item_softmax_ce

log = logging.getLogger("llmrec")


@dataclass(kw_only=True)
class BLADEConfig:
    n_items: int = 0
    """Number of real items (filled from the data); ids 1..n_items, 0 is padding."""
    n_behaviors: int = 0
    """Size of the behaviour vocabulary (filled from the data); sets are bit masks over it."""
    max_len: int = 50
    """Input sequence length (filled from data.max_len)."""
    hidden: int = 64
    """Embedding and model width."""
    n_layers: int = 2
    """Transformer blocks of the early-fusion branch, and BASA+MoE blocks of the intermediate one."""
    n_heads: int = 2
    """Attention heads."""
    inner: int = 256
    """Feed-forward width (of each expert)."""
    dropout: float = 0.2
    """Dropout on embeddings, attention and block outputs."""
    early_fusion: Literal["sum", "concat", "gate", "none"] = "sum"
    """How item and behaviour-set embeddings are combined at the input; none = no early branch."""
    intermediate_fusion: bool = True
    """The BASA + behaviour-guided MoE branch; false = no intermediate branch."""
    alpha: float = 0.5
    """U = alpha * O (intermediate) + (1 - alpha) * F (early), when both branches are on."""
    n_experts: int = 4
    """Experts of the behaviour-guided MoE (1 = a plain feed-forward layer)."""
    richness_weight: bool = True
    """Weight each position's loss by the share of behaviours in its target set."""
    loss: Literal["ce", "sampled_ce"] = "ce"
    """ce: full softmax over items; sampled_ce: the target against ``n_negatives`` items drawn
    by ``sampler``, shared by the batch (log-corrected; for large catalogues), as in SASRec."""
    n_negatives: int = 256
    """Items per batch for sampled_ce."""
    sampler: Literal["uniform", "popularity"] = "uniform"
    """Proposal of sampled_ce's items: uniform (log(N/K)-corrected) or popularity (training counts
    ^ ``sampler_alpha``, logQ-corrected); see llmrec.backbones.sampling."""
    sampler_alpha: float = 1.0
    """Exponent of the popularity proposal (1 = unigram, as in-batch negatives; 0.75 flatter)."""
    augmentations: list[str] = field(default_factory=lambda: list(AUGMENTATIONS))
    """Behaviour-level augmentations for the contrastive views: cooccurrence, masking, flipping."""
    aug_ratio: float = 0.3
    """rho: probability that an augmentation touches a step's behaviour set."""
    cl_weight: float = 0.1
    """lambda: weight of the contrastive loss between two augmented views (0 = off)."""
    cl_temperature: float = 0.5
    """tau of the NT-Xent contrastive loss."""
    init_std: float = 0.02
    """Std of the normal initialisation of linear and embedding weights."""


class BehaviorSetEncoder(nn.Module):
    """Eq. 1: softmax over the behaviours in the set (scores w . e_b), weighted sum of embeddings."""

    def __init__(self, n_behaviors: int, hidden: int):
        super().__init__()
        self.n = n_behaviors
        self.emb = nn.Parameter(torch.empty(n_behaviors, hidden))
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        member = to_bits(mask, self.n)  # (..., nb)
        logits = self.score(self.emb).squeeze(-1).expand(member.shape)  # (..., nb)
        weights = logits.masked_fill(~member, float("-inf")).softmax(-1)
        weights = torch.nan_to_num(weights, nan=0.0)  # empty set (padding) -> zero vector
        return weights @ self.emb  # (..., D)


class BehaviorAwareAttention(nn.Module):
    """Causal self-attention with an additive bias lambda_h * cos(s_i, s_j) per head."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attn = SelfAttention(hidden, heads, dropout)
        self.scale = nn.Parameter(torch.ones(heads))

    def forward(self, x: torch.Tensor, sets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = F.normalize(sets, dim=-1)
        sim = s @ s.transpose(1, 2)  # (B, L, L)
        bias = self.scale.view(1, -1, 1, 1) * sim.unsqueeze(1)  # (B, H, L, L)
        return self.attn(x, bias.masked_fill(~mask, float("-inf")))


class BehaviorGuidedMoE(nn.Module):
    """E two-layer GELU experts mixed by a softmax gate on the step's behaviour-set embedding.

    The experts' first layers are one (D, E*I) linear and their second layers one (E*I, D)
    linear: scaling expert e's hidden units by its gate weight g_e before the shared second
    matmul gives exactly sum_e g_e * expert_e(x), in two matmuls instead of 2E. There is no
    dropout inside the experts (the block's residual dropout follows the MoE): on CPU, sampling
    a mask over the E*I hidden units took a third of BLADE's training step.
    """

    def __init__(self, hidden: int, inner: int, experts: int):
        super().__init__()
        self.n, self.inner = experts, inner
        self.up = nn.Linear(hidden, experts * inner)
        self.down = nn.Linear(experts * inner, hidden, bias=False)
        self.down_bias = nn.Parameter(torch.zeros(experts, hidden))
        self.gate = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, experts)) if experts > 1 else None
        self.last_gate: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.up(x))  # (B, L, E*I)
        if self.gate is None:
            return self.down(h) + self.down_bias[0]
        g = self.gate(sets).softmax(-1)  # (B, L, E)
        self.last_gate = g.detach()
        h = (h.unflatten(-1, (self.n, self.inner)) * g.unsqueeze(-1)).flatten(-2)
        return self.down(h) + g @ self.down_bias


class BASABlock(nn.Module):
    def __init__(self, c: BLADEConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.hidden), nn.LayerNorm(c.hidden)
        self.attn = BehaviorAwareAttention(c.hidden, c.n_heads, c.dropout)
        self.moe = BehaviorGuidedMoE(c.hidden, c.inner, c.n_experts)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, sets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), sets, mask))
        return x + self.drop(self.moe(self.ln2(x), sets))


class BLADE(Backbone):
    config_class = BLADEConfig
    requires = frozenset({"items", "behaviors", "target_behaviors", "target_behavior"})

    def __init__(self, config: BLADEConfig):
        super().__init__(config)
        c = config
        if c.n_items <= 0 or c.n_behaviors <= 0:
            raise ValueError("BLADEConfig.n_items and n_behaviors must be set from the data")
        if c.early_fusion == "none" and not c.intermediate_fusion:
            raise ValueError("BLADE needs at least one fusion branch (early_fusion or intermediate_fusion)")
        if not 0.0 <= c.alpha <= 1.0:
            raise ValueError(f"BLADEConfig.alpha must lie in [0, 1], got {c.alpha}")
        unknown = [a for a in c.augmentations if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"BLADEConfig.augmentations: unknown {unknown}; known: {list(AUGMENTATIONS)}")
        if not 0.0 <= c.aug_ratio <= 1.0:
            raise ValueError(f"BLADEConfig.aug_ratio must lie in [0, 1], got {c.aug_ratio}")
        self.item_emb = nn.Embedding(c.n_items + 1, c.hidden, padding_idx=0)
        self.sampler = NegativeSampler.for_loss(c)
        self.pos_emb = nn.Embedding(c.max_len, c.hidden)
        self.sets = BehaviorSetEncoder(c.n_behaviors, c.hidden)
        self.drop = nn.Dropout(c.dropout)
        if c.early_fusion != "none":
            self.fuse = nn.Linear(2 * c.hidden, c.hidden) if c.early_fusion in ("concat", "gate") else None
            self.early = nn.ModuleList(TransformerBlock(c.hidden, c.n_heads, c.inner, c.dropout)
                                       for _ in range(c.n_layers))
            self.early_ln = nn.LayerNorm(c.hidden)
        if c.intermediate_fusion:
            self.middle = nn.ModuleList(BASABlock(c) for _ in range(c.n_layers))
            self.middle_ln = nn.LayerNorm(c.hidden)
        self.cross_q = nn.Linear(c.hidden, c.hidden)
        self.cross_kv = nn.Linear(c.hidden, 2 * c.hidden)
        self.cross_out = nn.Linear(c.hidden, c.hidden)
        self.ffn_ln = nn.LayerNorm(c.hidden)
        self.ffn = nn.Sequential(nn.Linear(c.hidden, c.inner), nn.GELU(), nn.Dropout(c.dropout),
                                 nn.Linear(c.inner, c.hidden))
        self.out_ln = nn.LayerNorm(c.hidden)
        self.apply(partial(init_weights, std=c.init_std))
        nn.init.normal_(self.sets.emb, std=c.init_std)
        self._gate_sum: torch.Tensor | None = None
        self._gate_n = 0
        self._cl_sum, self._cl_n = 0.0, 0

    def fused(self, items: torch.Tensor, behaviors: torch.Tensor, record: bool = True) -> torch.Tensor:
        """(B, L) ids and behaviour masks -> U (B, L, D), each position causal; ``record``: count
        this pass in the expert-usage statistics (off for the augmented views)."""
        c = self.config
        L = items.size(1)
        real = (items != 0).unsqueeze(-1)
        e = self.item_emb(items) * math.sqrt(c.hidden)  # (B, L, D)
        pos = self.pos_emb(torch.arange(L, device=items.device))
        s = self.sets(behaviors * (items != 0))  # (B, L, D); padding -> empty set
        mask = causal_mask(items)
        branches = []
        if c.early_fusion != "none":
            if c.early_fusion == "sum":
                x = e + s
            elif c.early_fusion == "concat":
                x = self.fuse(torch.cat([e, s], -1))
            else:
                g = torch.sigmoid(self.fuse(torch.cat([e, s], -1)))
                x = g * e + (1 - g) * s
            x = self.drop(x + pos) * real
            for block in self.early:
                x = block(x, mask)
            branches.append((1 - c.alpha if c.intermediate_fusion else 1.0, self.early_ln(x)))
        if c.intermediate_fusion:
            x = self.drop(e + pos) * real
            for block in self.middle:
                x = block(x, s, mask)
            if record:
                self._record_gates(items)
            branches.append((c.alpha if c.early_fusion != "none" else 1.0, self.middle_ln(x)))
        return sum(w * b for w, b in branches)

    def _record_gates(self, items: torch.Tensor) -> None:
        if not self.training or self.config.n_experts < 2:
            return
        real = items != 0
        for block in self.middle:
            g = block.moe.last_gate[real]  # (T, E)
            self._gate_sum = g.sum(0) if self._gate_sum is None else self._gate_sum + g.sum(0)
            self._gate_n += g.size(0)

    def read(self, u: torch.Tensor, items: torch.Tensor, query_sets: torch.Tensor) -> torch.Tensor:
        """Cross-attention from the target set at each position over U (causal), then an FFN."""
        B, L, D = u.shape
        H = self.config.n_heads
        q = self.cross_q(self.sets(query_sets)).view(B, L, H, D // H).transpose(1, 2)  # (B, H, L, d)
        k, v = self.cross_kv(u).view(B, L, 2, H, D // H).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(items),
                                           dropout_p=self.config.dropout if self.training else 0.0)
        x = u + self.drop(self.cross_out(y.transpose(1, 2).reshape(B, L, D)))
        x = x + self.drop(self.ffn(self.ffn_ln(x)))
        return self.out_ln(x)  # (B, L, D)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        items = batch["items"]
        u = self.fused(items, batch["behaviors"])
        query = batch["target_behavior"].view(-1, 1).expand_as(items)  # the same set at every position
        return self.read(u, items, query)[:, -1]  # (B, D)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight

    def loss_and_user(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        items, targets = batch["items"], batch["targets"]
        hidden = self.read(self.fused(items, batch["behaviors"]), items, batch["target_behaviors"])
        valid = targets != 0
        ce = item_softmax_ce(hidden[valid], self.item_emb.weight, targets[valid], self.sampler)  # (T,)
        if self.config.richness_weight:
            w = to_bits(batch["target_behaviors"][valid], self.config.n_behaviors).sum(-1).float()
            w = w / self.config.n_behaviors
            loss = (w * ce).sum() / w.sum().clamp(min=1e-12)
        else:
            loss = ce.mean()
        if self.config.cl_weight > 0 and self.config.augmentations:
            cl = self.contrastive_loss(batch)
            self._cl_sum, self._cl_n = self._cl_sum + float(cl.detach()), self._cl_n + 1
            loss = loss + self.config.cl_weight * cl
        return loss, hidden[:, -1]

    def contrastive_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """NT-Xent between two behaviour-augmented views' fused representations (last position)."""
        c = self.config
        items, behaviors = batch["items"], batch["behaviors"]
        real = items != 0
        views = [augment_view(behaviors, real, batch["target_behavior"], c.n_behaviors, c.augmentations,
                              c.aug_ratio) for _ in range(2)]
        u = self.fused(items.repeat(2, 1), torch.cat(views), record=False)[:, -1]  # both views in one pass
        return nt_xent(*u.chunk(2), c.cl_temperature)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss_and_user(batch)[0]

    def inert_on(self, behaviors) -> list[str]:
        """The switched-on components that cannot change anything on these training steps' sets
        (bit masks): with one behaviour per step the richness weight is the same everywhere (and it
        is normalised), co-occurrence addition finds nothing co-occurring and frequency masking
        would empty every set it touches, so it keeps them. Auxiliary flipping still acts."""
        import numpy as np

        masks = np.asarray(behaviors, dtype=np.int64)
        if not len(masks) or ((masks & (masks - 1)) != 0).any():  # some step holds 2+ behaviours
            return []
        c = self.config
        augs = c.augmentations if c.cl_weight > 0 else []
        return (["richness_weight"] if c.richness_weight else []) + [a for a in ("cooccurrence", "masking") if a in augs]

    def fit_data(self, data) -> None:
        """Warns (does not change the model) when the training split makes components inert."""
        from llmrec.data.prepare import TRAIN

        inert = self.inert_on(data.behaviors[data.split == TRAIN])
        if inert:
            log.warning("BLADE on %s: every training step has a single behaviour, so %s change nothing "
                        "here (docs/models/blade.md)", data.name, ", ".join(inert))

    def extra_stats(self) -> dict[str, float]:
        """Mean gate weight of each expert and mean contrastive loss since the last call (training)."""
        out = {}
        if self._gate_sum is not None and self._gate_n:
            usage = (self._gate_sum / self._gate_n).tolist()
            out.update({f"expert{i}_usage": float(u) for i, u in enumerate(usage)})
        if self._cl_n:
            out["loss_cl"] = self._cl_sum / self._cl_n
        self._gate_sum, self._gate_n, self._cl_sum, self._cl_n = None, 0, 0.0, 0
        return out

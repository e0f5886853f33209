"""Semantic-signal adapter: any registry backbone trained jointly with ESIM interests (EIMF).

The adapter wraps a backbone for training only. Its loss is the backbone's own loss plus two
auxiliary terms on the user representation the backbone returns from the same forward pass
(``loss_and_user``: (B, D) or (B, K, D) behavioural interests; a single vector is K = 1):

(a) modality alignment, InfoNCE between each user's behavioural interests and the semantic
    interests of the users in the batch. The semantic phrase embeddings (E dims, from the ESIM
    artifact) pass through a learned linear map, the behavioural interests through a small MLP
    head (the SimCLR/CLIP projection head), into one D-dim space. Set-to-set matching is
    best-match: for every semantic phrase take its most similar behavioural interest (cosine),
    then the weight-averaged score over phrases (weights from the artifact),
    ``s(u, v) = sum_j w_vj max_k cos(b_uk, P e_vj) / sum_j w_vj``. The loss is symmetric
    (users -> interest sets and back) with temperature ``temperature``. Rows of the same user
    (several windows) and of the same ESIM cluster (members copy their representative's phrases)
    are not used as negatives: they are the same or near-identical interest sets.
(b) semantic prediction: an MLP maps each behavioural interest into the phrase-embedding space;
    each phrase is predicted by its best-matching interest, loss = weighted mean of
    ``1 - cos``. Cosine rather than MSE because the phrase embeddings are unit-norm directions.

EIMF describes both tasks without fixing the matching of K interests to K' phrases; best-match
is the standard choice for multi-interest sets (it is how the backbone itself scores items).
Users without interests (no text, or absent from the artifact) contribute no auxiliary loss.
A weight of 0 switches its term off entirely (no parameters, no computation), so with both
weights 0 training equals the plain backbone's bit for bit.

Only the backbone is saved for serving: scoring never touches the adapter, the artifact or any
LLM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.backbones.base import Backbone


class SemanticAdapter(nn.Module):
    def __init__(self, backbone: Backbone, embeddings: torch.Tensor, weights: torch.Tensor,
                 cluster: torch.Tensor, *, dim: int, align_weight: float, predict_weight: float,
                 temperature: float = 0.1):
        """``embeddings`` (U, K', E), ``weights`` (U, K'), ``cluster`` (U,) indexed by dense user id;
        ``dim`` is the backbone's representation width."""
        super().__init__()
        if align_weight < 0 or predict_weight < 0:
            raise ValueError("semantic weights must be >= 0")
        if temperature <= 0:
            raise ValueError("semantic.temperature must be > 0")
        self.backbone = backbone
        self.align_weight, self.predict_weight, self.temperature = align_weight, predict_weight, temperature
        # the artifact is data, not state: rebuilt from semantic.interests, never checkpointed
        self.register_buffer("sem_emb", F.normalize(embeddings.float(), dim=-1), persistent=False)
        self.register_buffer("sem_w", weights.float().clamp(min=0), persistent=False)
        self.register_buffer("cluster", cluster.long(), persistent=False)
        E = embeddings.size(-1)
        # both sides get a head (as in CLIP/SimCLR) so the loss shapes the backbone's vectors
        # through a learned map instead of pinning their raw directions to the phrase clusters
        self.to_behaviour = nn.Linear(E, dim) if align_weight > 0 else None
        self.align_head = (nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
                           if align_weight > 0 else None)
        self.predictor = (nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, E))
                          if predict_weight > 0 else None)
        self.last_terms: dict[str, float] = {}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        loss, user = self.backbone.loss_and_user(batch)
        self.last_terms = {}
        if self.to_behaviour is None and self.predictor is None:
            return loss
        if user.dim() == 2:
            user = user.unsqueeze(1)  # (B, 1, D)
        users = batch["users"]
        sem, w = self.sem_emb[users], self.sem_w[users]  # (B, K', E), (B, K')
        if self.to_behaviour is not None:
            term = self.alignment(user, sem, w, users)
            self.last_terms["align"] = float(term.detach())
            loss = loss + self.align_weight * term
        if self.predictor is not None:
            term = self.prediction(user, sem, w)
            self.last_terms["predict"] = float(term.detach())
            loss = loss + self.predict_weight * term
        return loss

    def alignment(self, user: torch.Tensor, sem: torch.Tensor, w: torch.Tensor,
                  users: torch.Tensor) -> torch.Tensor:
        b = F.normalize(self.align_head(user), dim=-1)  # (B, K, D)
        s = F.normalize(self.to_behaviour(sem), dim=-1)  # (B, K', D)
        cos = torch.einsum("ikd,jpd->ijkp", b, s).amax(dim=2)  # (B, B, K'): best interest per phrase
        wn = w / w.sum(1, keepdim=True).clamp(min=1e-12)  # (B, K')
        sim = (cos * wn.unsqueeze(0)).sum(-1) / self.temperature  # (B, B): user i vs set of j
        has = w.sum(1) > 0  # (B,)
        cl = self.cluster[users]
        same = (users[:, None] == users[None, :]) | ((cl[:, None] == cl[None, :]) & (cl[:, None] >= 0))
        same.fill_diagonal_(False)
        pair_ok = has[:, None] & has[None, :] & ~same  # diagonal stays True where has
        if not has.any():
            return sim.sum() * 0.0  # keeps every parameter in the graph (DDP)
        logits = sim.masked_fill(~pair_ok, float("-inf"))
        target = torch.arange(len(users), device=users.device)
        rows = F.cross_entropy(logits[has], target[has])
        cols = F.cross_entropy(logits.T[has], target[has])
        return (rows + cols) / 2

    def prediction(self, user: torch.Tensor, sem: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        pred = F.normalize(self.predictor(user), dim=-1)  # (B, K, E)
        best = torch.einsum("bke,bpe->bkp", pred, sem).amax(dim=1)  # (B, K')
        per_user = ((1 - best) * w).sum(1)  # (B,)
        total = w.sum()
        if total <= 0:
            return best.sum() * 0.0
        return per_user.sum() / total

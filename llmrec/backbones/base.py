"""The contract every backbone follows, so the trainer and evaluator never special-case a model.

A backbone is built from its config dataclass alone (data sizes such as ``n_items`` are config
fields the builder fills from the dataset). Item ids run 1..n_items; id 0 is padding.

Batch fields (all ``LongTensor``; a backbone declares the ones it reads in ``requires``):

==================  ==========  ===============================================================
users               (B,)        dense user ids
items               (B, L)      left-padded input item ids
targets             (B, L)      next-item targets (0 = ignore); training only
behaviors           (B, L)      behaviour bit masks of the inputs
target_behaviors    (B, L)      behaviour bit masks of the targets; training only
scenes              (B, L)      scene ids of the inputs (0 = none)
target_scenes       (B, L)      scene ids of the targets; training only
target_behavior     (B,)        the dataset's target behaviour (bit mask): the evaluation query
==================  ==========  ===============================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn


class Backbone(nn.Module, ABC):
    config_class: ClassVar[type]
    """The dataclass this model's constructor takes."""
    requires: ClassVar[frozenset[str]] = frozenset({"items"})
    """Batch fields the model reads (checked against the data before training)."""
    batch_format: ClassVar[str] = "sequence"
    """Which batch builder feeds it: 'sequence' (fixed-length windows)."""

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss, so DistributedDataParallel's forward hook syncs gradients."""
        return self.loss(batch)

    def section(self) -> dict[str, Any]:
        """``{'name': ..., **config}``: enough to rebuild this model with build_backbone."""
        import dataclasses

        from llmrec.backbones.registry import name_of

        return {"name": name_of(type(self)), **dataclasses.asdict(self.config)}

    @abstractmethod
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar training loss for one batch."""

    def loss_and_user(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and the user representation of each row, (B, D) or (B, K, D), from
        the same forward pass (plug-ins such as the semantic adapter read it). Backbones override
        this to avoid a second pass; the default runs ``encode`` in training mode."""
        return self.loss(batch), self.encode(batch)

    @abstractmethod
    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """User representation: (B, D), or (B, K, D) for multi-interest models."""

    @abstractmethod
    def item_embeddings(self) -> torch.Tensor:
        """(n_items + 1, D) item vectors; row 0 is padding."""

    def score(self, batch: dict[str, torch.Tensor],
              candidates: torch.Tensor | None = None) -> torch.Tensor:
        """Dot-product scores: (B, n_items + 1) over all items when ``candidates`` is None
        (column 0, padding, is -inf), else (B, C) for candidate ids (B, C).

        Multi-interest encodings (B, K, D) take the max over the K interests.
        """
        user = self.encode(batch)  # (B, D) or (B, K, D)
        items = self.item_embeddings()  # (N+1, D)
        if candidates is None:
            scores = torch.matmul(user, items.T)  # (B, N+1) or (B, K, N+1)
        else:
            cand = items[candidates]  # (B, C, D)
            if user.dim() == 2:
                scores = torch.einsum("bd,bcd->bc", user, cand)
            else:
                scores = torch.einsum("bkd,bcd->bkc", user, cand)
        if user.dim() == 3:
            scores = scores.max(dim=1).values
        if candidates is None:
            scores[:, 0] = float("-inf")
        return scores

    def extra_stats(self) -> dict[str, float]:
        """Model-specific figures logged after each epoch (e.g. expert usage); none by default."""
        return {}

    # Optional: ``train_states(batch) -> (B, L, D)``, the user state that predicts ``targets[:, t]``
    # at each position, for plug-ins that score and train on their own (MCLMR); ``fit_data(data)``,
    # called once with the Prepared dataset before training, for statistics of the training split.

    def adversary(self) -> nn.Module | None:
        """A sub-module trained against the rest (e.g. a discriminator), or None (the default).

        The trainer leaves its parameters out of the main optimiser and, after every main step,
        takes one step of their own optimiser on ``adversary_loss()``: the alternating updates
        live in the loop, not in the model."""
        return None

    def adversary_loss(self) -> torch.Tensor:
        """The adversary's loss on what the last ``loss`` call cached (its inputs detached)."""
        raise NotImplementedError(f"{type(self).__name__} has no adversary")

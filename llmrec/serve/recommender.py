"""LLM-free recommendation from a trained run: a checkpoint, the dataset it was trained on, top-k.

A user's input sequence at serving time is the latest ``max_len`` interactions of their whole
history (train, validation and test splits: at serving time all of it is the past), and
``exclude_seen`` masks every item they interacted with. A request may carry the interactions of
a user the model never saw (cold start); sequential backbones encode them like any history (each
step taken as the target behaviour, no scene), a model with per-user vectors (MF) cannot and
says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.data.sequences import _left_pad


class UnknownId(KeyError):
    """A user or item id the model does not know (HTTP 404)."""

    def __init__(self, kind: str, ids: list[str]):
        super().__init__(f"unknown {kind} id{'s' if len(ids) > 1 else ''}: {', '.join(map(repr, ids[:5]))}")
        self.kind, self.ids = kind, ids

    def __str__(self) -> str:
        return str(self.args[0])


class NotSupported(ValueError):
    """A request the model cannot serve (HTTP 422)."""


@dataclass
class Recommender:
    model: Any
    name: str
    max_len: int
    user_index: dict[str, int]
    item_vocab: list[str]
    item_index: dict[str, int]
    inputs: dict[str, np.ndarray]
    """field -> (U, max_len) left-padded item / behaviour / scene ids of each user's latest history."""
    seen: list[np.ndarray]
    target_behavior: int
    info: dict[str, Any]

    @classmethod
    def from_run(cls, path: str | Path, *, device: str = "cpu") -> "Recommender":
        """``path``: a run folder (its best.safetensors) or a checkpoint file."""
        from llmrec.config import DataConfig, from_dict
        from llmrec.data.prepare import prepare
        from llmrec.errors import DataError
        from llmrec.train.checkpoint import checkpoint_exists, load_model

        path = Path(path)
        ckpt_path = path / "best.safetensors" if path.is_dir() else path
        if not checkpoint_exists(ckpt_path):
            raise DataError(f"{ckpt_path}: no checkpoint (train a model first: llmrec train)")
        model, ckpt = load_model(ckpt_path, device)
        model.eval()
        data_cfg = from_dict(DataConfig, dict(ckpt["run_config"]["data"]), prefix="data")
        data = prepare(data_cfg)
        if data.user_vocab != ckpt["user_vocab"] or data.item_vocab != ckpt["item_vocab"]:
            raise DataError(f"{ckpt_path}: the dataset prepared from its config no longer matches the "
                            "checkpoint's vocabularies (the data changed since training)")
        L = data_cfg.max_len
        fields = {"item": data.item, "behaviors": data.behaviors, "scene": data.scene}
        inputs = {f: np.stack([_left_pad(col[data.rows(u)], L) for u in range(data.n_users)]) if data.n_users
                  else np.zeros((0, L), np.int64) for f, col in fields.items()}
        seen = [np.unique(data.item[data.rows(u)]) for u in range(data.n_users)]
        section = ckpt["backbone"]
        name = " + ".join([section["name"], *sorted(section.get("plugins") or {})])
        info = {"name": name, "checkpoint": str(ckpt_path), "dataset": data.name, "users": data.n_users,
                "items": data.n_items, "max_len": L, "best_epoch": ckpt.get("best_epoch"),
                "derived": data.meta.get("derived", [])}
        return cls(model, name, L, {u: i for i, u in enumerate(data.user_vocab)}, data.item_vocab,
                   {it: i for i, it in enumerate(data.item_vocab) if i}, inputs, seen,
                   1 << data.behavior_vocab.index(data.target_behavior), info)

    def _items(self, ids: list[str]) -> np.ndarray:
        unknown = [i for i in ids if i not in self.item_index]
        if unknown:
            raise UnknownId("item", unknown)
        return np.array([self.item_index[i] for i in ids], dtype=np.int64)

    @torch.no_grad()
    def recommend(self, user_id: str, k: int = 10, *, exclude_seen: bool = True,
                  interactions: list[str] | None = None) -> list[dict[str, Any]]:
        """Top-k items with scores for a known user, or for a new one from ``interactions``."""
        if user_id in self.user_index:
            u = self.user_index[user_id]
            batch = {"users": torch.tensor([u]), "items": torch.from_numpy(self.inputs["item"][u:u + 1]),
                     "behaviors": torch.from_numpy(self.inputs["behaviors"][u:u + 1]),
                     "scenes": torch.from_numpy(self.inputs["scene"][u:u + 1])}
            seen = self.seen[u]
        elif interactions:
            if "items" not in getattr(self.model, "base", self.model).requires:  # e.g. MF: a vector per user
                raise NotSupported(f"{self.name} keeps one vector per training user and cannot fold in "
                                   f"the new user {user_id!r}")
            items = self._items(interactions)
            seq = _left_pad(items, self.max_len)
            batch = {"users": torch.tensor([0]), "items": torch.from_numpy(seq[None]),
                     "behaviors": torch.from_numpy((seq[None] > 0) * self.target_behavior),
                     "scenes": torch.zeros(1, self.max_len, dtype=torch.long)}
            seen = np.unique(items)
        else:
            raise UnknownId("user", [user_id])
        batch["target_behavior"] = torch.tensor([self.target_behavior])
        scores = self.model.score(batch)[0].float()  # (N+1,)
        scores[0] = float("-inf")
        if exclude_seen and len(seen):
            scores[torch.from_numpy(seen)] = float("-inf")
        k = min(k, int(torch.isfinite(scores).sum()))
        top = torch.topk(scores, k)
        return [{"item_id": self.item_vocab[int(i)], "score": float(s)} for s, i in zip(top.values, top.indices)]

"""Fixed-length sequence batches for sequential backbones.

Training uses every training interaction of a user: the history is cut into windows of
``max_len + 1`` ids ending at the last one, then every ``stride`` steps earlier (stride = max_len:
no overlap). Each window gives inputs ``w[:-1]`` and next-item targets ``w[1:]``, left-padded with
0; a target whose input is padding is ignored (0).

Evaluation builds one example per user that has targets in the split: the input is the last
``max_len`` interactions before the split (train for valid; train + valid for test; under a release
split only the rows placed before the held-out row, since its valid row keeps its place in time), the history
mask is every item of those interactions that holds the target behaviour (on single-behaviour data:
every item), and the targets are the user's items in the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from llmrec.data.prepare import TRAIN, Prepared

FIELDS = ("item", "behaviors", "scene")


def _left_pad(values: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(length, dtype=np.int64)
    if len(values):
        out[-len(values):] = values[-length:]
    return out


@dataclass
class TrainWindows:
    users: np.ndarray
    """(W,) user of each window."""
    windows: dict[str, np.ndarray]
    """field -> (W, max_len + 1) left-padded ids (item, behaviors, scene)."""
    target_behavior: int = 0
    """Bit mask of the dataset's target behaviour (tells backbones which behaviours are auxiliary)."""

    @classmethod
    def build(cls, data: Prepared, max_len: int, stride: int | None = None) -> "TrainWindows":
        stride = stride or max_len
        users, rows = [], {f: [] for f in FIELDS}
        columns = {"item": data.item, "behaviors": data.behaviors, "scene": data.scene}
        train = data.split == TRAIN
        for u in range(data.n_users):
            sl = data.rows(u)
            keep = np.flatnonzero(train[sl]) + sl.start
            n = len(keep)
            end = n
            while end >= 2:
                part = keep[max(0, end - max_len - 1):end]
                for f in FIELDS:
                    rows[f].append(_left_pad(columns[f][part], max_len + 1))
                users.append(u)
                end -= stride
        if not users:
            raise ValueError(f"{data.name}: no user has two training interactions")
        bit = 1 << data.behavior_vocab.index(data.target_behavior)
        return cls(np.asarray(users), {f: np.stack(v) for f, v in rows.items()}, bit)

    def __len__(self) -> int:
        return len(self.users)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        item = torch.from_numpy(self.windows["item"][index])  # (B, L+1)
        inputs = item[:, :-1]
        targets = item[:, 1:].clone()
        targets[inputs == 0] = 0  # no context to predict from
        beh = torch.from_numpy(self.windows["behaviors"][index])
        scene = torch.from_numpy(self.windows["scene"][index])
        return {"users": torch.from_numpy(self.users[index]), "items": inputs, "targets": targets,
                "behaviors": beh[:, :-1], "target_behaviors": beh[:, 1:],
                "scenes": scene[:, :-1], "target_scenes": scene[:, 1:],
                "target_behavior": torch.full((len(index),), self.target_behavior, dtype=torch.long)}

    def iterate(self, batch_size: int, *, generator: torch.Generator | None = None,
                shuffle: bool = True, rank: int = 0, world_size: int = 1) -> Iterator[dict]:
        """Yield batches; with world_size > 1 each rank takes a disjoint shard of every global batch."""
        n = len(self)
        order = (torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n))
        for start in range(0, n, batch_size):
            chunk = order[start:start + batch_size]
            shard = np.array_split(chunk, world_size)[rank]
            if len(shard):
                yield self.batch(shard)


@dataclass
class EvalExamples:
    users: np.ndarray
    """(E,) user of each example."""
    inputs: dict[str, np.ndarray]
    """field -> (E, max_len) left-padded input ids."""
    history: tuple[np.ndarray, np.ndarray]
    """CSR (indptr (E+1,), items) of items to mask from the ranking."""
    targets: tuple[np.ndarray, np.ndarray]
    """CSR (indptr (E+1,), items) of held-out target items."""
    target_behavior: int
    """Bit mask of the target behaviour: the query for behaviour-aware models."""
    target_scene: np.ndarray | None = None
    """(E,) scene id of each example's first held-out interaction (0 = none): next-scene labels."""

    @classmethod
    def build(cls, data: Prepared, split: int, max_len: int) -> "EvalExamples":
        columns = {"item": data.item, "behaviors": data.behaviors, "scene": data.scene}
        bit = 1 << data.behavior_vocab.index(data.target_behavior)
        # release splits keep a valid row at its place in time, with later training rows after it
        positional = (data.meta.get("config") or {}).get("split") == "release"
        users, inputs = [], {f: [] for f in FIELDS}
        h_ptr, h_idx, t_ptr, t_idx, t_scene = [0], [], [0], [], []
        for u in range(data.n_users):
            sl = data.rows(u)
            labels = data.split[sl]
            target_rows = np.flatnonzero(labels == split) + sl.start
            if not len(target_rows):
                continue
            before = np.flatnonzero(labels < split) + sl.start
            if positional:  # only what happened before the held-out event, never later rows
                before = before[before < target_rows[0]]
            if not len(before):
                continue
            users.append(u)
            t_scene.append(data.scene[target_rows[0]])
            for f in FIELDS:
                inputs[f].append(_left_pad(columns[f][before], max_len))
            # only items the user already took in the target behaviour leave the ranking: a viewed
            # item may still be bought (multi-behaviour data); single-behaviour data: every item
            hist = np.unique(data.item[before][(data.behaviors[before] & bit) > 0])
            targ = np.unique(data.item[target_rows])
            h_idx.append(hist)
            h_ptr.append(h_ptr[-1] + len(hist))
            t_idx.append(targ)
            t_ptr.append(t_ptr[-1] + len(targ))
        empty = np.zeros(0, dtype=np.int64)
        return cls(np.asarray(users, dtype=np.int64),
                   {f: np.stack(v) if v else np.zeros((0, max_len), np.int64) for f, v in inputs.items()},
                   (np.asarray(h_ptr), np.concatenate(h_idx) if h_idx else empty),
                   (np.asarray(t_ptr), np.concatenate(t_idx) if t_idx else empty), bit,
                   np.asarray(t_scene, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.users)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        n = len(index)
        return {"users": torch.from_numpy(self.users[index]),
                "items": torch.from_numpy(self.inputs["item"][index]),
                "behaviors": torch.from_numpy(self.inputs["behaviors"][index]),
                "scenes": torch.from_numpy(self.inputs["scene"][index]),
                "target_behavior": torch.full((n,), self.target_behavior, dtype=torch.long)}

    @staticmethod
    def _rows(csr: tuple[np.ndarray, np.ndarray], index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, item) coordinate pairs of the selected examples, rows renumbered 0..len(index)-1."""
        ptr, idx = csr
        starts, ends = ptr[index], ptr[index + 1]
        lengths = ends - starts
        rows = np.repeat(np.arange(len(index)), lengths)
        cols = idx[np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])] if len(index) else idx[:0]
        return torch.from_numpy(rows), torch.from_numpy(cols.astype(np.int64))

    def history_coo(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self._rows(self.history, index)

    def targets_coo(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self._rows(self.targets, index)

"""Read an ESIM artifact for training: per-user interest embeddings aligned to a dataset's users.

Only numpy and json: training with semantic signals never loads an LLM or the sentence encoder
(the embeddings were computed by the extraction job).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmrec.errors import DataError


@dataclass
class SemanticTable:
    embeddings: np.ndarray
    """(U, K, E) float32 interest embeddings, rows in the target dataset's dense user order."""
    weights: np.ndarray
    """(U, K) float32 interest weights; an all-zero row = no interests for that user."""
    cluster: np.ndarray
    """(U,) int64 ESIM cluster of each user (-1 = none); members share their representative's phrases."""
    path: str
    manifest: dict

    @property
    def covered(self) -> int:
        return int((self.weights.sum(1) > 0).sum())


def resolve_artifact(path: str | Path) -> Path:
    """Accept the artifact folder itself or the job's out_dir that holds ``artifact/``."""
    path = Path(path)
    if (path / "artifact" / "manifest.json").exists():
        return path / "artifact"
    return path


def load_semantic_table(path: str | Path, user_vocab: list[str]) -> SemanticTable:
    """Align the artifact's users (by raw id) to ``user_vocab``; users it lacks get no interests."""
    folder = resolve_artifact(path)
    names = ("interests.jsonl", "interest_emb.npy", "interest_weight.npy", "manifest.json")
    for name in names:
        if not (folder / name).exists():
            raise DataError(f"semantic.interests: {folder / name} does not exist (is {path} a finished "
                            "`llmrec interests extract` run or its artifact/ folder?)")
    emb = np.load(folder / "interest_emb.npy").astype(np.float32)
    weight = np.load(folder / "interest_weight.npy").astype(np.float32)
    if emb.ndim != 3 or weight.shape != emb.shape[:2]:
        raise DataError(f"{folder}: interest_emb.npy {emb.shape} and interest_weight.npy {weight.shape} "
                        "do not match as (U, K, E) and (U, K)")
    row_of: dict[str, int] = {}
    cluster_of: dict[str, int] = {}
    with (folder / "interests.jsonl").open() as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
                user, index = str(rec["user"]), int(rec["index"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{folder / 'interests.jsonl'} line {n}: {exc}") from None
            if not 0 <= index < len(emb):
                raise DataError(f"{folder / 'interests.jsonl'} line {n}: index {index} outside the "
                                f"{len(emb)} rows of interest_emb.npy")
            row_of[user] = index
            cluster_of[user] = int(rec.get("cluster", -1) if rec.get("cluster") is not None else -1)
    U, K, E = len(user_vocab), emb.shape[1], emb.shape[2]
    out_emb = np.zeros((U, K, E), np.float32)
    out_w = np.zeros((U, K), np.float32)
    cluster = np.full(U, -1, np.int64)
    hits = 0
    for u, raw in enumerate(user_vocab):
        row = row_of.get(str(raw))
        if row is None:
            continue
        hits += 1
        out_emb[u], out_w[u], cluster[u] = emb[row], weight[row], cluster_of[str(raw)]
    if hits == 0:
        raise DataError(f"semantic.interests: no user of this dataset appears in {folder / 'interests.jsonl'} "
                        f"(first ids here: {user_vocab[:3]}; there: {list(row_of)[:3]})")
    manifest = json.loads((folder / "manifest.json").read_text())
    return SemanticTable(out_emb, out_w, cluster, str(folder), manifest)

"""A tiny XRec-style dataset (interactions + explanation texts) and a fake sentence encoder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.config import DataConfig


class HashEncoder:
    """Deterministic unit vectors from a text's hash: a stand-in for MiniLM in unit tests."""

    dim = 16
    name = "hash"

    def encode(self, texts, progress=False):
        out = np.zeros((len(texts), self.dim), np.float32)
        for r, t in enumerate(texts):
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=self.dim)
            out[r] = v / np.linalg.norm(v)
        return out


def write_xrec(folder: Path, *, n_users: int = 30, n_items: int = 40, per_user: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    edges = [(u, int(i)) for u in range(n_users) for i in rng.choice(n_items, per_user, replace=False)]
    (folder / "interactions.csv").write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in edges))
    words = ["cheap beer", "cozy patio", "spicy tacos", "friendly staff", "live music", "fresh sushi"]
    rows = []
    for k, (u, i) in enumerate(edges[::3]):
        rows.append({"uid": u, "iid": i, "title": f"Place {i}", "user_summary": "", "item_summary": "",
                     "explanation": f"The user would enjoy it for its {words[k % 6]} and {words[(k + 2) % 6]}."})
    (folder / "explanations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def xrec_cfg(tmp_path: Path) -> DataConfig:
    return DataConfig(source="xrec", path=str(write_xrec(tmp_path / "xr")), cache_dir=str(tmp_path / "cache"),
                      zero_shot_ratio=0.1)


@pytest.fixture
def encoder() -> HashEncoder:
    return HashEncoder()


def tiny_overrides(out: Path, **extra) -> list[str]:
    base = {"model.n_micro": 2, "model.chunk_dim": 8, "model.code_dim": 16, "model.codebook_size": 16,
            "model.min_entities_per_code": 2, "train.epochs": 2, "train.batch_size": 64,
            "train.text_batch_size": 16, "train.progress": False, "train.out_dir": str(out),
            "semantic.encoder": "hash"}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]

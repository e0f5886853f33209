"""Shared fixtures: tiny datasets written in the loaders' formats, and paths to real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from llmrec.config import DataConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LLMREC_SHARED", ROOT.parent / "shared"))
XREC = SHARED / "data" / "xrec"
RETAILROCKET = SHARED / "data" / "multibehavior" / "retailrocket"
TAOBAO = SHARED / "data" / "multibehavior" / "taobao"
ECOMM = SHARED / "data" / "multibehavior" / "alibaba_ecomm"
BEAUTY = SHARED / "data" / "amazon" / "beauty2014"


def benchmark_module(name: str):
    """Imports benchmarks/<name>.py: scripts, not a package, that import their siblings by name, so
    benchmarks/ is on the path while the import runs (and only then)."""
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def write_atomic_dataset(folder: Path, *, n_users: int = 12, n_items: int = 30, per_user: int = 10,
                         seed: int = 0) -> Path:
    """A RecBole atomic dataset with random but seeded interactions and strictly rising times."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    t = 1_000_000
    for u in range(1, n_users + 1):
        for i in rng.choice(np.arange(1, n_items + 1), size=per_user, replace=False):
            t += int(rng.integers(1, 5000))
            lines.append(f"u{u}\ti{i}\t{int(rng.integers(1, 6))}\t{t}")
    (folder / f"{folder.name}.inter").write_text("\n".join(lines) + "\n")
    items = ["item_id:token\ttitle:token_seq\tgenre:token_seq"]
    items += [f"i{i}\tItem {i}\tDrama Comedy" for i in range(1, n_items + 1)]
    (folder / f"{folder.name}.item").write_text("\n".join(items) + "\n")
    return folder


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return write_atomic_dataset(tmp_path / "tiny")


@pytest.fixture
def tiny_cfg(tiny_dir: Path, tmp_path: Path) -> DataConfig:
    return DataConfig(source="recbole", path=str(tiny_dir), max_len=8,
                      cache_dir=str(tmp_path / "cache"))


def ml100k_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("recbole") is not None


needs_ml100k = pytest.mark.skipif(not ml100k_available(),
                                  reason="recbole wheel (embedded ml-100k) not installed: "
                                         "pip install --no-deps recbole==1.2.1")
needs_releases = pytest.mark.skipif(
    not all(p.exists() for p in (RETAILROCKET, TAOBAO, ECOMM, BEAUTY)),
    reason=f"the multi-behaviour and Amazon releases were not found under {SHARED / 'data'} (set LLMREC_SHARED)")
needs_xrec = pytest.mark.skipif(not (XREC / "yelp" / "interactions.csv").exists(),
                                reason=f"XRec data not found under {XREC} (set LLMREC_SHARED)")


def write_semantic_artifact(folder: Path, users: list[str], *, k: int = 3, dim: int = 12, n_clusters: int = 3,
                            seed: int = 0, missing: int = 0) -> Path:
    """An ESIM artifact in the job's format with random unit embeddings; the last ``missing``
    users get no interests (zero weights), as users without text do."""
    import json

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    emb = rng.normal(size=(len(users), k, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    weight = rng.uniform(0.2, 1.0, size=(len(users), k)).astype(np.float32)
    if missing:
        weight[-missing:] = 0
        emb[-missing:] = 0
    with (folder / "interests.jsonl").open("w") as f:
        for i, u in enumerate(users):
            f.write(json.dumps({"user": u, "index": i, "cluster": i % n_clusters if i < len(users) - missing else None,
                                "interests": []}) + "\n")
    np.save(folder / "interest_emb.npy", emb)
    np.save(folder / "interest_weight.npy", weight)
    (folder / "manifest.json").write_text(json.dumps({"format": "llmrec-esim-1", "llm": "test",
                                                      "clustering": {"n_clusters": n_clusters}}))
    return folder


def crash_then_resume(monkeypatch, start_run, *, at_epoch: int = 2):
    """Run ``start_run()`` with a simulated crash at the start of epoch ``at_epoch + 1`` (after
    ``at_epoch`` checkpointed epochs), then ``start_run()`` again normally; returns the second result."""
    from llmrec.train.trainer import Trainer

    original = Trainer._epoch

    def crash(self, train):
        if self.epoch == at_epoch:
            raise KeyboardInterrupt("simulated crash")
        return original(self, train)

    monkeypatch.setattr(Trainer, "_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        start_run()
    monkeypatch.setattr(Trainer, "_epoch", original)
    return start_run()

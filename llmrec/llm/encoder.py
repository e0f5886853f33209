"""The frozen sentence encoder (MiniLM by default) that defines the codeword space."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np


class SentenceEncoder:
    """``encode(texts) -> (n, dim)`` L2-normalised float32 embeddings, through sentence-transformers.

    ``name`` is a catalogue name (``minilm-l6``) or a local sentence-transformers folder; nothing
    is downloaded (HF_HUB_OFFLINE is set before loading).
    """

    def __init__(self, name: str = "minilm-l6", *, device: str = "cpu", batch_size: int = 128):
        from llmrec.llm.catalog import CATALOG, resolve

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve(name) if name in CATALOG else Path(name)
        self.name = name
        self.model = SentenceTransformer(str(path), device=device)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=progress)
        return out.astype(np.float32)

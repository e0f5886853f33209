"""Typed configuration of BEAT stage 1 (the behaviour tokenizer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llmrec.config import DataConfig, apply_overrides, from_dict, read_config_file


@dataclass(kw_only=True)
class TokenizerModelConfig:
    n_micro: int = 5
    """Micro tokens per entity: the graph embedding is cut into this many chunks."""
    chunk_dim: int = 64
    """Size of one micro chunk; an entity embedding has n_micro * chunk_dim dims."""
    n_layers: int = 2
    """LightGCN propagation layers (the output is the mean over layers 0..L)."""
    codebook_size: int = 512
    """Codes per codebook (user/item x macro/micro) before scaling to the entity count."""
    min_entities_per_code: int = 8
    """Shrink a codebook so that each code has at least this many assignments on average, so
    tokens stay shared rather than near-IDs (512 codes for 300 items would be IDs)."""
    code_dim: int = 384
    """Codeword space = the sentence encoder's space (MiniLM: 384)."""
    quantize: bool = True
    """False = ablation: continuous projected embeddings, no codebooks."""
    use_macro: bool = True
    """False = ablation: no macro token (micro only)."""
    use_micro: bool = True
    """False = ablation: no micro tokens (macro only)."""
    beta_commit: float = 0.5
    """Weight of the commitment term e_latent (VQ loss = q_latent + beta_commit * e_latent)."""
    ortho_weight: float = 1.0
    """Weight of the micro orthogonality loss."""
    recon_loss: Literal["mse", "bpr"] = "bpr"
    """Interaction reconstruction over positives and sampled negatives from the cosine of the
    (micro + macro) behaviour vectors: bpr = pairwise ranking loss (default); mse = BEAT's
    reference form, squared error to 1 / 0. On Yelp the mse form collapsed the macro codebook
    (perplexity 399 -> 13 in one epoch) while validation HR@20 fell; bpr kept improving."""
    recon_scale: float = 5.0
    """Scale of the cosine logit in the bpr variant."""
    n_negatives: int = 4
    """Sampled negative items per positive edge."""
    reseed_dead_codes: bool = True
    """Replace codes unused during an epoch by random current encoder outputs (codebook reset)."""
    plain_lightgcn: bool = False
    """Baseline: plain LightGCN (BPR, dot product, no tokens, no semantics), for comparisons."""


@dataclass(kw_only=True)
class SemanticConfig:
    macro: bool = True
    """Macro supervision: InfoNCE between fused user+item macro tokens and the pair's text."""
    micro: bool = True
    """Micro supervision: masked reconstruction of the entity's intention-phrase embeddings."""
    alpha: float = 0.2
    """Weight of the macro InfoNCE."""
    beta: float = 1.0
    """Weight of the micro reconstruction."""
    temperature: float = 0.2
    """InfoNCE temperature."""
    mask_ratio: float = 0.2
    """Share of an entity's phrase slots masked (at least one), drawn afresh every batch."""
    max_phrases: int = 5
    """Phrase slots per entity (the LLM may give up to 10; the first ones are kept)."""
    encoder: str = "minilm-l6"
    """Sentence encoder (catalogue name or local folder)."""
    pair_text: Literal["explanation", "review"] = "explanation"
    """Which text of a training pair the macro term reads."""
    intentions: str | None = None
    """JSONL of extracted intention phrases (``llmrec tokenizer extract``); None = no micro term."""
    item_text_phrases: bool = True
    """Without an LLM file, use an item's categories / genres as its phrases (MovieLens)."""


@dataclass(kw_only=True)
class TokenizerTrainConfig:
    epochs: int = 100
    """Upper bound on epochs."""
    batch_size: int = 4096
    """Positive edges per step (BEAT trains with large batches)."""
    text_batch_size: int = 256
    """Text pairs / entities per step for the semantic terms."""
    lr: float = 1e-3
    """Adam learning rate."""
    patience: int = 5
    """Early stopping: evaluations without a better validation metric."""
    metric: str = "hr@20"
    """Validation metric (full ranking over held-out valid edges)."""
    eval_every: int = 1
    """Evaluate every this many epochs."""
    valid_ratio: float = 0.05
    """Share of edges held out for validation (seeded, uniform over edges)."""
    test_ratio: float = 0.1
    """Share of edges held out for the reconstruction test (seeded, uniform over edges)."""
    holdout_users: float = 0.0
    """Share of users removed from training entirely (cold-start evaluation)."""
    seed: int = 0
    """Seed of weights, edge split and sampling."""
    device: str = "auto"
    """auto, cpu or cuda[:N]."""
    out_dir: str = "runs/tokenizer"
    """Artifact folder."""
    resume: bool = True
    """Resume from out_dir/last.safetensors when present."""
    time_budget_s: float | None = None
    """Stop after this many seconds."""
    progress: bool = True
    """tqdm progress bars."""
    eval_users: int | None = None
    """Evaluate on at most this many users (seeded sample); None = all."""


@dataclass(kw_only=True)
class TokenizerRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    """Interactions and texts (the explanation split decides which texts are training texts)."""
    model: TokenizerModelConfig = field(default_factory=TokenizerModelConfig)
    """Graph encoder and quantisers."""
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    """Text supervision."""
    train: TokenizerTrainConfig = field(default_factory=TokenizerTrainConfig)
    """Loop settings."""


def load_tokenizer_config(path: str | Path | None = None,
                          overrides: list[str] | None = None) -> TokenizerRunConfig:
    """Read a stage-1 YAML config (or defaults when ``path`` is None) and apply dotted overrides."""
    values = read_config_file(path, "tokenizer")
    apply_overrides(values, overrides or [])
    return from_dict(TokenizerRunConfig, values)

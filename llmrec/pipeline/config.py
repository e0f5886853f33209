"""Typed configuration of ``llmrec pipeline``: one dataset, every stage, one run folder.

The stage sections take the keys of each stage's own config (the YAML of ``llmrec tokenizer
train``, ``llmrec interests extract``, ``llmrec align train``) without ``data`` and ``out_dir``:
the pipeline shares one data section and gives every step its own folder under ``out_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmrec.config import DataConfig, EvalConfig, TrainConfig
from llmrec.errors import ConfigError


@dataclass(kw_only=True)
class SignalsConfig:
    enabled: bool = True
    """Retrain the backbone with the ESIM semantic adapter (EIMF) and recommend with it; False = the
    plain backbone serves and the ESIM step only feeds the explanations' evidence."""
    align_weight: float = 0.1
    """Weight of the modality-alignment InfoNCE term."""
    predict_weight: float = 0.1
    """Weight of the semantic-prediction term."""
    temperature: float = 0.1
    """InfoNCE temperature."""


@dataclass(kw_only=True)
class ExplainStepConfig:
    users: int = 3
    """Sample users whose top-k recommendations are explained (seeded, among the test users)."""
    user_ids: list[str] = field(default_factory=list)
    """Explicit user ids instead of a sample (raw ids of the dataset)."""
    top_k: int = 5
    """Recommendations explained per user."""
    permutation: bool = True
    """Also generate the permutation control (each pair given another pair's evidence, a pair that
    shares neither its user nor its item) so the report shows whether the text depends on the pair."""
    max_new_tokens: int = 48
    """Explanation length cap (tokens)."""
    batch_size: int = 16
    """Pairs per generation batch (and per resumable checkpoint)."""
    seed: int = 0
    """Seed of the user sample and the permutation donors."""
    bootstrap: int = 2000
    """Bootstrap resamples of the report's intervals."""


@dataclass(kw_only=True)
class EnginesConfig:
    train: Literal["local", "torchrun"] = "local"
    """Backbone training: this process, or ``torchrun`` with ``nproc`` data-parallel processes
    (gloo on CPU, NCCL on GPU; the trainer reads torchrun's environment)."""
    nproc: int = 2
    """Processes per node when ``train: torchrun``."""
    llm: Literal["hf", "vllm"] = "hf"
    """Generation runtime of the ESIM, teacher and explanation steps (vllm: the GPU configs)."""
    extract: Literal["local", "ray"] = "local"
    """ESIM extraction: this process, or Ray Data actors (``interests.extract.ray_workers``)."""


@dataclass(kw_only=True)
class PipelineConfig:
    data: DataConfig = field(default_factory=DataConfig)
    """The one dataset every step reads."""
    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "sasrec"})
    """Any registry backbone (plug-ins included), as in ``llmrec train``."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Backbone training (both the plain and the signals run; ``out_dir`` is set per step)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Ranking evaluation of both backbone runs."""
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    """The ESIM semantic signals trained into the backbone."""
    tokenizer: dict[str, Any] = field(default_factory=dict)
    """BEAT stage 1: the keys of a tokenizer config (model, semantic, train) without data/out_dir."""
    interests: dict[str, Any] = field(default_factory=dict)
    """ESIM: the keys of an interests config (texts, cluster, extract) without data/out_dir."""
    align: dict[str, Any] = field(default_factory=dict)
    """BEAT stage 2: the keys of an alignment config (model, train, teacher, references) without
    model.tokenizer_run and train.out_dir. Data without reference texts (MovieLens) gets a teacher
    pass first (``references: teacher``, the default there)."""
    explain: ExplainStepConfig = field(default_factory=ExplainStepConfig)
    """Which recommendations get explained."""
    engines: EnginesConfig = field(default_factory=EnginesConfig)
    """Where the heavy steps run."""
    teacher_limit: int | None = None
    """Cap on the teacher pass's pairs (first N of the seeded sample); None = all users."""
    out_dir: str = "runs/pipeline"
    """Run folder: one sub-folder per step, the report at its top."""

    def __post_init__(self) -> None:
        for key in ("tokenizer", "interests", "align"):
            section = getattr(self, key)
            for banned in ("data", "out_dir"):
                if banned in section:
                    raise ConfigError(f"{key}.{banned}: the pipeline sets it (data from the top-level data "
                                      "section, folders under out_dir)")
        if "out_dir" in (self.align.get("train") or {}) or "tokenizer_run" in (self.align.get("model") or {}):
            raise ConfigError("align: train.out_dir and model.tokenizer_run are set by the pipeline")
        if self.explain.top_k <= 0 or (self.explain.users <= 0 and not self.explain.user_ids):
            raise ConfigError("explain.users and explain.top_k must be greater than 0")


FOLDERS = {"backbone": "backbone", "tokenizer": "tokenizer", "interests": "interests",
           "backbone_signals": "backbone-signals", "teacher": "teacher", "align": "align", "explain": "explain"}


def folder(out: Path, name: str) -> Path:
    """The folder of step ``name`` under the run folder ``out``."""
    return out / FOLDERS[name]


def serving_backbone(cfg: PipelineConfig) -> str:
    """The step whose backbone recommends (and ranks the evidence): the signals run when it exists."""
    return "backbone_signals" if cfg.signals.enabled else "backbone"

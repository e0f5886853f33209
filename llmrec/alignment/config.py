"""Typed configuration of BEAT stage 2 (alignment of behaviour tokens with a frozen LLM)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llmrec.config import apply_overrides, from_dict, read_config_file
from llmrec.errors import ConfigError

REST = "_rest"
"""Suffix of an evaluation split that holds the pairs of a split OUTSIDE its seeded sample
(``test_rest``): the untouched remainder, reported apart from the sample that earlier tables used."""

Variant = Literal["beat", "title", "profile", "constant", "per_id", "evidence", "evidence_plain", "profile_trained"]
EVIDENCE_VARIANTS = ("evidence", "evidence_plain")
VARIANTS = ("beat", "title", "profile", "constant", "per_id")
TRAINABLE = ("beat", "constant", "per_id", "evidence", "profile_trained")
PAIR_INPUTS = ("beat", "per_id", "evidence", "evidence_plain", "profile_trained")
"""Variants whose inputs differ between pairs: they have a permutation control."""


@dataclass(kw_only=True)
class AlignModelConfig:
    llm: str = "smollm2-135m"
    """Frozen causal LLM (catalogue name or local HF folder)."""
    variant: Variant = "evidence"
    """evidence (the default) / beat (the paper's method) / controls. beat = projected behaviour tokens; title = item name only, no soft tokens; profile = the
    long text profile (user and item summaries); constant = 12 learned constant soft tokens (a
    trained-prompt control); per_id = one learned soft token per user and item, initialised from
    the stage-1 graph embeddings; evidence = the pair's evidence as short text (the user's
    training-history titles nearest the item, token glosses, interests; llmrec.alignment.evidence)
    plus 12 learned constant soft tokens for the style (not in the paper); evidence_plain = the
    evidence prompt untrained; profile_trained = (b'), the text profile plus 12 learned constant
    soft tokens trained as the constant control (the issue's lever ii)."""
    evidence_titles: int = 3
    """evidence variants: history titles shown per pair (the most related first)."""
    evidence_interests: str = ""
    """evidence variants: an ESIM run folder (``llmrec interests extract``) whose interest phrases
    join each user's evidence; empty = none."""
    evidence_ranker: str = ""
    """evidence variants: a backbone run folder whose item embeddings rank the history titles (the
    pipeline passes its backbone); empty = the stage-1 LightGCN item embeddings."""
    tokenizer_run: str = ""
    """Stage-1 run folder (``llmrec tokenizer train``): tokens, codebooks, data config."""
    use_macro: bool = True
    """False = ablation: drop the macro token of user and item."""
    use_micro: bool = True
    """False = ablation: drop the micro tokens of user and item."""
    sar: bool = True
    """Semantic alignment regulariser (False = the no-SAR ablation)."""
    sar_weight: float = 1.0
    """Weight of SAR in the loss (BEAT: 1.0)."""
    train_codebooks: bool = False
    """Also fine-tune the stage-1 codewords (off: only the projection trains)."""
    scale_init: bool = True
    """Scale the projector's last layer at init so projected tokens vary as much as the LLM's own
    input embeddings (LSUV-style); False = PyTorch's default init (tokens start tiny and alike)."""
    anchor_tokens: bool = False
    """beat only, not in the paper: add a learned vector per token position (initialised from
    random rows of the LLM's vocabulary embeddings, as the constant control's tokens) to each
    projected token, with the projected part starting at half the embeddings' spread. The soft
    tokens then start as vectors the frozen LLM reads like words, and the behaviour signal is a
    residual on them. An attempt at the echo collapse of BEAT on SmolLM2 (README)."""
    anchor_scale: float = 0.5
    """With ``anchor_tokens``: the projected part's initial spread, as a fraction of the vocabulary
    embeddings' spread. 0 = zero-initialised output layer (the zero-init residual of ControlNet and
    LLaMA-Adapter): the tokens start exactly as the constant control's (same seed, same vocabulary
    rows) and the behaviour signal grows from nothing during training. Applied by ``scale_init``."""
    token_lr: float | None = None
    """Learning rate of the soft tokens that live directly in the LLM's input space (the constant
    control's tokens, the anchors); None = ``train.lr``. Adam moves each element by about lr per
    step whatever its size, so the same lr is a smaller relative step on a backbone with larger
    input embeddings: measured std 0.12 for SmolLM2-135M, 1.03 for Gemma-3-270M (it multiplies
    embeddings by sqrt(hidden)), 0.017 for Qwen2.5-0.5B. Set it to ``train.lr`` times the ratio of
    spreads to give another backbone the same relative step."""
    contrast_weight: float = 0.0
    """> 0: the pair-contrastive lever (not in the paper): adds ``contrast_weight`` x mean over the
    batch of max(0, margin + NLL(reference | own inputs) - NLL(reference | another pair's inputs)),
    each NLL a per-token mean over the reference. The other pair is the next row of the batch (the
    batch order is random), its user and item swapped in, title and reference kept, as in the
    permutation control; a row whose donor shares its user or item is left out of the term. A
    margin ranking loss on sequence likelihoods; it costs a second forward and backward per step.
    Variants with per-pair inputs and trained parts only: beat, per_id, evidence, profile_trained."""
    contrast_margin: float = 0.1
    """The pair-contrastive margin, in nats per reference token."""
    n_constant: int = 12
    """Soft tokens of the constant control (half in the user slot, half in the item slot)."""
    lora_rank: int = 0
    """> 0: ablation that also trains LoRA adapters (peft) on the LLM's attention projections."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    dtype: str = "auto"
    """auto|float32|bfloat16: compute dtype of the LLM forward/backward and of explanation
    generation (bf16 as autocast; weights stay float32, the loss is float32). auto = bf16 only where
    the CPU has native bf16 (avx512_bf16/amx_bf16) or the CUDA device supports it: emulated bf16 was
    measured 8-17x slower than float32 on a CPU without it. The log names the flags and the choice."""
    prompt: str | None = None
    """Prompt template; default: explanation (soft tokens), explanation_title, explanation_profile."""

    def prompt_name(self) -> str:
        if self.prompt:
            return self.prompt
        return {"title": "explanation_title", "profile": "explanation_profile", "evidence": "explanation_evidence",
                "evidence_plain": "explanation_evidence_plain",
                "profile_trained": "explanation_profile_trained"}.get(self.variant, "explanation")


@dataclass(kw_only=True)
class AlignTrainConfig:
    epochs: int = 1
    """Passes over the training pairs (BEAT: 3; the CPU default is 1)."""
    batch_size: int = 8
    """Pairs per step (BEAT: 8)."""
    lr: float = 1e-3
    """AdamW learning rate (BEAT: 1e-4 over 3 full epochs; a CPU budget of ~100 steps needs more)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float | None = 1.0
    """Clip gradients to this norm; None = no clipping (the backbone trainer's key of the same name)."""
    max_train_pairs: int | None = 800
    """Seeded sample of the training pairs (None = all)."""
    max_target_tokens: int = 64
    """Reference explanations are cut to this many LLM tokens for the NLL."""
    seed: int = 0
    """Seed of weights, pair sample and batch order."""
    out_dir: str = "runs/alignment"
    """Artifact folder."""
    resume: bool = True
    """Resume from out_dir/last.safetensors when present."""
    checkpoint_every: int = 25
    """Write last.safetensors every this many steps."""
    progress: bool = True
    """tqdm progress bars."""


@dataclass(kw_only=True)
class AlignEvalConfig:
    splits: list[str] = field(default_factory=lambda: ["test", "zero_shot"])
    """Explanation splits to generate for and score; ``test_rest`` (any split + ``_rest``): the split's
    pairs outside the ``max_pairs`` sample, scored as a table of their own."""
    max_pairs: int | None = 200
    """Seeded sample of each split's pairs (None = all)."""
    max_new_tokens: int = 64
    """Generation length cap."""
    batch_size: int = 16
    """Generation batch."""
    backend: str = "hf"
    """hf or vllm."""
    scorer: str = "smollm2-135m"
    """The one fixed LM of the BARTScore-style likelihood score, for every method."""
    bert_model: str = "minilm-l6"
    """BERTScore encoder (catalogue name or folder)."""
    bootstrap: int = 2000
    """Paired bootstrap resamples."""
    seed: int = 0
    """Seed of the evaluation pair sample and the bootstrap; apart from ``train.seed`` so that sweeps
    of several training seeds are scored on the same pairs."""


@dataclass(kw_only=True)
class TeacherConfig:
    model: str | None = None
    """Teacher LLM; None = the best installed catalogue model (Qwen2.5-0.5B, else SmolLM2-135M)."""
    per_user: int = 1
    """Pairs per user, drawn from the user's liked TRAIN interactions (seeded)."""
    min_rating: float = 4.0
    """A liked interaction has at least this rating (all count where there are no ratings)."""
    max_liked: int = 8
    """Titles in the user's profile (other liked train items, never the explained item)."""
    valid_ratio: float = 0.1
    """Share of users whose pairs form the valid split."""
    test_ratio: float = 0.1
    """Share of users whose pairs form the test split."""
    max_new_tokens: int = 80
    """Teacher answer length cap."""
    batch_size: int = 16
    """Pairs per LLM batch."""
    seed: int = 0
    """Seed of the pair sample and the user split."""


@dataclass(kw_only=True)
class AlignRunConfig:
    model: AlignModelConfig = field(default_factory=AlignModelConfig)
    train: AlignTrainConfig = field(default_factory=AlignTrainConfig)
    eval: AlignEvalConfig = field(default_factory=AlignEvalConfig)
    references: str = "xrec"
    """xrec = the dataset's own explanation texts (split by the data layer); or a JSONL of
    teacher-generated references (``llmrec align teacher``) with user, item, split, explanation;
    none = no references (variants with nothing to train, e.g. evidence_plain, only explaining)."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """Teacher pass writing references for data without reviews (MovieLens)."""
    variants: dict[str, dict] = field(default_factory=dict)
    """Comparison (``llmrec eval explanations``): name -> dotted overrides of ``model``."""

    def check(self, *, models: bool = True) -> None:
        """Cross-field checks; ``models``: also that a catalogue LLM is installed (skipped when the
        caller passes an already loaded backend)."""
        if not self.model.tokenizer_run:
            raise ConfigError("model.tokenizer_run: the stage-1 run folder is required")
        known = ("train", "valid", "test", "zero_shot")
        bad = [s for s in self.eval.splits if s.removesuffix(REST) not in known]
        if bad:
            raise ConfigError(f"eval.splits: unknown split(s) {bad}; known: {', '.join(known)}, and each "
                              f"with {REST} (its pairs outside the eval.max_pairs sample)")
        if models:
            from llmrec.llm.catalog import require_installed

            require_installed(self.model.llm, key="model.llm")  # seconds, before any data or model loads


def load_align_config(path: str | Path | None = None, overrides: list[str] | None = None) -> AlignRunConfig:
    values = read_config_file(path, "alignment")
    apply_overrides(values, overrides or [])
    return from_dict(AlignRunConfig, values)

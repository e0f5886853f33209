"""Typed config dataclasses <- YAML + dotted overrides (``train.lr=3e-4``).

Every section is a keyword-only dataclass whose fields carry a one-line docstring. Unknown or
mistyped keys raise :class:`ConfigError` naming the dotted key. The backbone section is resolved
through the registry: ``backbone.name`` picks the model, the rest fills that model's own config.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from llmrec.errors import ConfigError


@dataclass(kw_only=True)
class DataConfig:
    source: str = "ml-100k"
    """Loader name: ml-100k (embedded), recbole, movielens, amazon, xrec, taobao, tmall,
    retailrocket, tenrec, table (generic CSV/Parquet with ``columns``), or a research release's
    derived files: retailrocket-cml, taobao-mbcgcn, alibaba-ecomm, amazon-seqrec."""
    path: str | None = None
    """File or folder to read; not needed for the embedded ml-100k."""
    name: str | None = None
    """Dataset name used in outputs and the cache key; defaults to the source or folder name."""
    columns: dict[str, str] = field(default_factory=dict)
    """For source=table: canonical field -> column name (user, item, timestamp, rating, ...)."""
    behaviors: list[str] | None = None
    """Declared behaviour vocabulary; None keeps the loader's own."""
    target_behavior: str | None = None
    """The behaviour that is recommended; None keeps the loader's default."""
    keep_behaviors: Literal["all", "target"] = "all"
    """Which rows make the interaction sequence: every row, or rows holding the target behaviour."""
    derive_behaviors: bool = False
    """Derive behaviour sets from ratings (rated / liked >= 4 / disliked <= 2); labelled derived."""
    derive_scenes: Literal["none", "daypart", "weekday"] = "none"
    """Derive a scene from timestamps (UTC day part or weekday); labelled derived."""
    min_user_inter: int = 0
    """k-core: drop users with fewer interactions (repeated until stable with min_item_inter)."""
    min_item_inter: int = 0
    """k-core: drop items with fewer interactions."""
    dedup: Literal["none", "first", "last"] = "none"
    """Collapse repeated (user, item) rows, keeping the first or last; behaviour sets are merged."""
    split: Literal["auto", "loo", "temporal", "random", "release"] = "auto"
    """loo: last item test, second last valid; temporal: global time cut; random: seeded hold-out;
    release: the source's own per-row split (test rows of the target behaviour; valid picked by
    ``valid_pick``); auto: release where the source carries one, else loo where it has timestamps,
    random where it has none."""
    valid_pick: Literal["auto", "last", "random"] = "auto"
    """split=release: which training target event of each user becomes valid:
    the last in order, or a seeded random one; auto: last where the source has timestamps."""
    valid_ratio: float = 0.1
    """Share of interactions (temporal) or of each user's items (random) used for validation."""
    test_ratio: float = 0.1
    """Share used for test in the temporal and random splits."""
    explanation_valid_ratio: float = 0.1
    """Share of explanation pairs in the explanation valid split (datasets with reference texts)."""
    explanation_test_ratio: float = 0.1
    """Share of explanation pairs in the explanation test split."""
    zero_shot_ratio: float = 0.05
    """Share of users (and then items) held out entirely for the zero-shot explanation split."""
    explanation_split_version: Literal[1, 2] = 2
    """2: split membership by a seeded hash of the raw user (zero-shot) and of the raw pair
    (train/valid/test), so adding or removing a row moves only that row. 1: seeded permutations of
    dense ids (every run made before 2026-12 and the published tables; one changed line can move
    many pairs)."""
    max_len: int = 50
    """Length of input sequences for sequential backbones."""
    window_stride: int | None = None
    """Stride of the training windows over a user's history; None = max_len (no overlap)."""
    on_bad_rows: Literal["error", "skip"] = "error"
    """error: stop at the first malformed row; skip: drop such rows, count and report them."""
    cache_dir: str = ".llmrec_cache"
    """Processed-dataset cache, keyed by source files and this config."""
    seed: int = 0
    """Seed for the random split and the zero-shot split."""


@dataclass(kw_only=True)
class TrainConfig:
    epochs: int = 200
    """Upper bound on epochs; early stopping usually ends sooner."""
    batch_size: int = 128
    """Sequences (windows) per optimiser step, summed over processes."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    patience: int = 10
    """Stop after this many evaluations without a better validation metric."""
    metric: str = "ndcg@10"
    """Validation metric for early stopping and the best checkpoint."""
    eval_every: int = 1
    """Evaluate on the validation split every this many epochs."""
    seed: int = 42
    """Global seed: weights, shuffling, dropout."""
    device: str = "auto"
    """auto (cuda if present), cpu or cuda[:N]."""
    out_dir: str = "runs/default"
    """Run folder: checkpoints, metrics.jsonl, results.json, results.md."""
    resume: bool = True
    """Resume from out_dir/last.safetensors when present."""
    max_grad_norm: float | None = None
    """Clip gradients to this norm; None = no clipping."""
    time_budget_s: float | None = None
    """Stop training after this many seconds (the demo's cap); None = no cap."""
    progress: bool = True
    """Show tqdm progress bars."""


@dataclass(kw_only=True)
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [5, 10, 20, 50])
    """Cut-offs for HR, Recall, NDCG and MRR."""
    mode: Literal["full", "sampled"] = "full"
    """full: rank every item (history masked); sampled: target vs n_negatives sampled items."""
    n_negatives: int = 100
    """Negatives per user in sampled mode."""
    sampler: Literal["uniform", "popularity"] = "uniform"
    """Negative sampler in sampled mode."""
    batch_size: int = 512
    """Users scored per batch; bounds memory at batch_size x n_items scores."""
    seed: int = 0
    """Seed of the negative sampler (sampled mode)."""
    test: bool = True
    """False: stop after validation (for choosing hyperparameters on valid); no test metric is
    computed and results.json says so. Ablations need the test metrics and refuse it."""


@dataclass(kw_only=True)
class SemanticConfig:
    interests: str | None = None
    """ESIM artifact (a finished `llmrec interests extract` folder or its artifact/); None = off."""
    align_weight: float = 0.1
    """Weight of the modality-alignment InfoNCE loss; 0 switches it off."""
    predict_weight: float = 0.1
    """Weight of the semantic-prediction loss; 0 switches it off."""
    temperature: float = 0.1
    """InfoNCE temperature of the alignment loss."""


@dataclass(kw_only=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    """Where the interactions come from and how they are split."""
    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "sasrec"})
    """Backbone name plus its own config fields (validated against that model's config class)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimiser and loop settings."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Ranking evaluation settings."""
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    """ESIM semantic signals trained jointly with the backbone (EIMF); training only."""

    def __post_init__(self) -> None:
        name, _, k = self.train.metric.partition("@")
        if name not in ("hr", "recall", "ndcg", "mrr") or not k.isdigit() or int(k) not in self.eval.ks:
            raise ConfigError(f"train.metric: {self.train.metric!r} is not computed; eval.ks is {self.eval.ks} "
                              "(use hr|recall|ndcg|mrr@k with k in eval.ks)")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue  # try the next member of the union
        raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads '3e-4' as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


# loop settings that only make sense above 0, in every config section that has them; lr may be 0
# (a frozen run: early-stopping tests use it) but never negative
POSITIVE = frozenset({"epochs", "batch_size", "token_lr", "text_batch_size", "eval_every",
                      "checkpoint_every", "max_len"})
NON_NEGATIVE = frozenset({"lr", "weight_decay"})

# dataclass name -> {old key: what replaced it}; an old key fails naming the new one
RENAMED: dict[str, dict[str, str]] = {
    "AlignModelConfig": {"bf16": "dtype (auto|float32|bfloat16; bf16: true -> dtype: bfloat16)"},
    "AlignTrainConfig": {"grad_clip": "max_grad_norm (one name across the trainers; 0 -> null = off)"},
}


def from_dict(cls: type, values: dict[str, Any], *, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key in RENAMED.get(cls.__name__, {}):
            new, _, hint = RENAMED[cls.__name__][key].partition(" ")
            raise ConfigError(f"config key '{dotted}' was replaced by '{prefix + '.' if prefix else ''}{new}'"
                              + (f" {hint}" if hint else ""))
        if key not in names:
            close = [n for n in names if n.startswith(key[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key '{dotted}'{hint}; known: {sorted(names)}")
        kwargs[key] = _coerce(value, hints[key], dotted)
        if key in POSITIVE and kwargs[key] is not None and kwargs[key] <= 0:
            raise ConfigError(f"{dotted}: must be greater than 0, got {kwargs[key]!r}")
        if key in NON_NEGATIVE and kwargs[key] is not None and kwargs[key] < 0:
            raise ConfigError(f"{dotted}: must not be negative, got {kwargs[key]!r}")
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def set_dotted(values: dict[str, Any], key: str, value: Any, *, what: str | None = None) -> None:
    """Set ``values[a][b][c] = value`` for ``key`` 'a.b.c', creating sections on the way."""
    node = values
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{what or repr(key)}: '{part}' is not a section")
    node[parts[-1]] = value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to a nested mapping, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        set_dotted(values, key, yaml.safe_load(raw), what=f"override {item!r}")
    return values


# what each shipped YAML's ``kind:`` means, and the command that reads it
KINDS: dict[str, str] = {
    "train": "llmrec train -c FILE (a backbone run: data, backbone, train, eval, semantic)",
    "data": "llmrec data stats -c FILE or llmrec train -c FILE (a data section alone)",
    "tokenizer": "llmrec tokenizer train -c FILE (BEAT stage 1)",
    "alignment": "llmrec align train -c FILE, llmrec eval explanations -c FILE (BEAT stage 2)",
    "interests": "llmrec interests extract -c FILE (ESIM)",
    "ablation": "llmrec ablate -c FILE (backbones x variants x seeds)",
    "pipeline": "llmrec pipeline -c FILE (the whole system, one resumable cached run)",
}


def read_config_file(path: str | Path | None, kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """The mapping in a YAML config file ({} when ``path`` is None); errors name the file. A file's
    ``kind:`` (optional) must be one of ``kind``; it is removed from the mapping."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    found = values.pop("kind", None)
    wanted = (kind,) if isinstance(kind, str) else kind
    if found is not None:
        if found not in KINDS:
            raise ConfigError(f"{path}: kind: {found!r} is not one of {sorted(KINDS)}")
        if wanted and found not in wanted:
            raise ConfigError(f"{path} is a '{found}' config: run it with `{KINDS[found].split(' (')[0]}`")
    if found == "data":
        values = {"data": values}
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config (or defaults when ``path`` is None) and apply dotted overrides."""
    values = read_config_file(path, ("train", "data"))
    apply_overrides(values, overrides or [])
    if isinstance(values.get("backbone"), dict):
        values["backbone"].setdefault("name", "sasrec")
    # the backbone section's own keys are the model's: llmrec.backbones.registry.backbone_config checks
    # them (the CLI and train.run.run do, before any data is read); this module imports nothing above it
    return from_dict(RunConfig, values)

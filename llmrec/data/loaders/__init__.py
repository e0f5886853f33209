"""Loaders: one function per source format, each returning the canonical :class:`RawData`.

Registered lazily by name, like the backbones, so a new format is one file and one line.
"""

from __future__ import annotations

import importlib

from llmrec.config import DataConfig
from llmrec.data.io import BadRows
from llmrec.data.schema import RawData
from llmrec.errors import ConfigError, DataError

LOADERS: dict[str, tuple[str, str]] = {
    "ml-100k": ("llmrec.data.loaders.recbole", "load_embedded_ml100k"),
    "recbole": ("llmrec.data.loaders.recbole", "load_atomic"),
    "movielens": ("llmrec.data.loaders.movielens", "load_movielens"),
    "amazon": ("llmrec.data.loaders.amazon", "load_amazon"),
    "xrec": ("llmrec.data.loaders.xrec", "load_xrec"),
    "taobao": ("llmrec.data.loaders.multibehavior", "load_taobao"),
    "tmall": ("llmrec.data.loaders.multibehavior", "load_tmall"),
    "retailrocket": ("llmrec.data.loaders.multibehavior", "load_retailrocket"),
    "tenrec": ("llmrec.data.loaders.multibehavior", "load_tenrec"),
    "table": ("llmrec.data.loaders.table", "load_table"),
    "retailrocket-cml": ("llmrec.data.loaders.releases", "load_retailrocket_cml"),
    "taobao-mbcgcn": ("llmrec.data.loaders.releases", "load_taobao_mbcgcn"),
    "alibaba-ecomm": ("llmrec.data.loaders.releases", "load_alibaba_ecomm"),
    "amazon-seqrec": ("llmrec.data.loaders.releases", "load_amazon_seqrec"),
}


def load_raw(cfg: DataConfig) -> RawData:
    """Read ``cfg.source`` into the canonical table, then apply behaviour overrides and derivations."""
    if cfg.source not in LOADERS:
        raise ConfigError(f"data.source: unknown source {cfg.source!r}; known: {sorted(LOADERS)}")
    if cfg.source != "ml-100k" and not cfg.path:
        raise ConfigError(f"data.path is required for source {cfg.source!r}")
    module, attr = LOADERS[cfg.source]
    bad = BadRows()
    raw: RawData = getattr(importlib.import_module(module), attr)(cfg, bad)
    raw.dropped_rows = dict(bad)
    from llmrec.data.derive import apply_derivations

    raw = apply_derivations(raw, cfg)
    if cfg.target_behavior is not None:
        if cfg.target_behavior not in raw.behavior_vocab:
            raise ConfigError(f"data.target_behavior {cfg.target_behavior!r} is not among the "
                              f"behaviours {raw.behavior_vocab}")
        raw.target_behavior = cfg.target_behavior
    if len(raw.inter) == 0:
        raise DataError(f"no interactions left in {raw.sources}")
    return raw

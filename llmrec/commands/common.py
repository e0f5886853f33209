"""Options shared by subcommands: a YAML config plus dotted ``key=value`` overrides."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmrec.config import RunConfig, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML run config (defaults: ml-100k, SASRec)")
    parser.add_argument("--source", help="shortcut for data.source=...")
    parser.add_argument("--path", help="shortcut for data.path=...")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. train.lr=3e-4 backbone.n_layers=2")


def config_from_args(args: argparse.Namespace, extra: list[str] | None = None) -> RunConfig:
    overrides = list(extra or [])
    if args.source:
        overrides.append(f"data.source={args.source}")
    if args.path:
        overrides.append(f"data.path={args.path}")
    from llmrec.backbones.registry import backbone_config

    cfg = load_config(args.config, overrides + list(args.overrides))
    backbone_config(cfg.backbone)  # the model's own keys, before any data is read
    return cfg


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=1, default=str))

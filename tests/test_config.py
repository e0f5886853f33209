from pathlib import Path

import numpy as np
import pytest

from llmrec.backbones.registry import backbone_config
from llmrec.config import DataConfig, RunConfig, apply_overrides, from_dict, load_config
from llmrec.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.lr=3e-4", "backbone.n_layers=1", "eval.ks=[1, 5]", "train.metric=hr@5"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.backbone == {"name": "sasrec", "n_layers": 1}
    assert cfg.eval.ks == [1, 5]
    assert cfg.data.source == "ml-100k"
    with pytest.raises(ConfigError, match=r"train.metric: 'ndcg@10' is not computed; eval.ks is \[1, 5\]"):
        load_config(None, ["eval.ks=[1, 5]"])


def test_unknown_key_names_the_dotted_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.lrr'"):
        load_config(None, ["train.lrr=1"])
    with pytest.raises(ConfigError, match=r"unknown config key 'backbone\.hiden'"):
        backbone_config(load_config(None, ["backbone.hiden=32"]).backbone)


def test_wrong_types_are_rejected():
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer"):
        from_dict(RunConfig, {"train": {"epochs": "ten"}})
    with pytest.raises(ConfigError, match=r"data\.split: 'weird' is not one of"):
        from_dict(RunConfig, {"data": {"split": "weird"}})
    with pytest.raises(ConfigError, match="expected true/false"):
        from_dict(DataConfig, {"derive_behaviors": 1})
    with pytest.raises(ConfigError, match="unknown backbone"):
        backbone_config({"name": "nope"})


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["train.lr"])


def test_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  source: ml-100k\n  max_len: 20\ntrain:\n  epochs: 3\n")
    cfg = load_config(path, ["train.epochs=4"])
    assert cfg.data.max_len == 20 and cfg.train.epochs == 4
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


def test_configs_tree_holds_every_shipped_yaml():
    assert len(SHIPPED) >= 18
    # the demo's pipeline config ships inside the package (`llmrec demo` reads it from an installed
    # wheel too); configs/pipeline/demo.yaml links to it
    assert (ROOT / "configs" / "pipeline" / "demo.yaml").resolve() == ROOT / "llmrec" / "pipeline" / "demo.yaml"
    outside = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.yaml")
               if not p.is_relative_to(ROOT / "configs") and not p.is_relative_to(ROOT / "llmrec" / "prompts")
               and p != ROOT / "llmrec" / "pipeline" / "demo.yaml"
               and not any(part.startswith(".") or part in ("runs", "build", "site") for part in p.relative_to(ROOT).parts)]
    assert outside == [], f"shipped YAML outside configs/: {outside}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_yaml_is_valid(path, tmp_path):
    """Loads and validates every YAML under configs/ by its declared ``kind:`` (no hand-kept list)."""
    import yaml

    from llmrec.config import KINDS

    kind = yaml.safe_load(path.read_text()).get("kind")
    assert kind in KINDS, f"{path}: declares kind {kind!r}; known: {sorted(KINDS)}"
    assert path.parent.name == {"train": path.parent.name, "data": "data", "tokenizer": "tokenizer",
                                "alignment": "alignment", "interests": "interests", "ablation": "ablations",
                                "pipeline": "pipeline"}[kind]
    if kind == "tokenizer":
        from llmrec.tokenizer.config import load_tokenizer_config

        load_tokenizer_config(path)
    elif kind == "alignment":
        from llmrec.alignment.config import load_align_config

        load_align_config(path).check()
    elif kind == "interests":
        from llmrec.interests.cluster import resolve_preference
        from llmrec.interests.config import load_interests_config
        from llmrec.llm.catalog import CATALOG
        from llmrec.llm.prompts import load_prompt

        cfg = load_interests_config(path)
        assert cfg.extract.llm in CATALOG
        load_prompt(cfg.texts.template), load_prompt(cfg.extract.prompt), load_prompt(cfg.extract.prompt + "_repair")
        resolve_preference(cfg.cluster.preference, np.eye(3, dtype=np.float32))
    elif kind == "ablation":
        from llmrec.experiments.ablate import load_ablation, run_config

        ab = load_ablation(path, [])
        for backbone in ab["backbones"]:
            for variant in ab["variants"]:
                run_config(ab, backbone, variant, 0, tmp_path)
    elif kind == "pipeline":
        from llmrec.llm.catalog import CATALOG
        from llmrec.pipeline import load_pipeline_config

        cfg = load_pipeline_config(path)  # resolves every step's own config
        assert cfg.interests["extract"]["llm"] in CATALOG and cfg.align["model"]["llm"] in CATALOG
    else:
        backbone_config(load_config(path).backbone)


def test_kind_mismatch_names_the_right_command(tmp_path):
    from llmrec.tokenizer.config import load_tokenizer_config

    with pytest.raises(ConfigError, match=r"is a 'alignment' config: run it with `llmrec align train -c FILE"):
        load_tokenizer_config(ROOT / "configs" / "alignment" / "yelp.yaml")
    bad = tmp_path / "x.yaml"
    bad.write_text("kind: pipelines\n")
    with pytest.raises(ConfigError, match=r"kind: 'pipelines' is not one of"):
        load_config(bad)
    cfg = load_config(ROOT / "configs" / "data" / "ml100k.yaml", ["train.epochs=1"])
    assert cfg.data.source == "ml-100k" and cfg.data.split == "loo"

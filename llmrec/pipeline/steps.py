"""The pipeline's steps: each resolves its stage's own config from the pipeline config and runs that
stage's public entry point into its own folder (each stage resumes itself after a crash).

    backbone          llmrec train (plain)                       -> backbone/
    tokenizer         BEAT stage 1                               -> tokenizer/
    interests         ESIM                                       -> interests/
    backbone_signals  llmrec train + semantic adapter (ESIM)     -> backbone-signals/
    teacher           references for data without texts          -> teacher/
    align             BEAT stage 2 (the default evidence method) -> align/
    explain           top-k of N users, explained + controls     -> explain/
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llmrec.config import RunConfig, from_dict, to_dict
from llmrec.errors import ConfigError
from llmrec.pipeline.config import PipelineConfig, folder, serving_backbone
from llmrec.pipeline.explain import explain_recommendations

UNTRAINED = ("title", "profile", "evidence_plain")  # stage-2 variants with nothing to train: no references needed



@dataclass
class Step:
    name: str
    deps: tuple[str, ...]
    config: Callable[[PipelineConfig, Path], Any]
    """The step's resolved config (a dataclass or a mapping): what its cache key is made of."""
    run: Callable[[PipelineConfig, Path], dict]
    """Run (or resume) the step into its folder; returns a JSON summary."""


# -- resolved configs ---------------------------------------------------------------------------
def backbone_config_of(cfg: PipelineConfig, out: Path, *, signals: bool = False) -> RunConfig:
    values = {"data": to_dict(cfg.data), "backbone": copy.deepcopy(cfg.backbone), "train": to_dict(cfg.train),
              "eval": to_dict(cfg.eval)}
    values["train"]["out_dir"] = str(folder(out, "backbone_signals" if signals else "backbone"))
    if signals:
        s = cfg.signals
        values["semantic"] = {"interests": str(folder(out, "interests")), "align_weight": s.align_weight,
                              "predict_weight": s.predict_weight, "temperature": s.temperature}
    return from_dict(RunConfig, values)


def tokenizer_config_of(cfg: PipelineConfig, out: Path):
    from llmrec.tokenizer.config import TokenizerRunConfig

    values = copy.deepcopy(cfg.tokenizer)
    values["data"] = to_dict(cfg.data)
    values.setdefault("train", {})["out_dir"] = str(folder(out, "tokenizer"))
    return from_dict(TokenizerRunConfig, values, prefix="tokenizer")


def interests_config_of(cfg: PipelineConfig, out: Path):
    from llmrec.interests.config import InterestsConfig

    values = copy.deepcopy(cfg.interests)
    values["data"] = to_dict(cfg.data)
    values["out_dir"] = str(folder(out, "interests"))
    extract = values.setdefault("extract", {})
    extract["engine"], extract["backend"] = cfg.engines.extract, cfg.engines.llm
    return from_dict(InterestsConfig, values, prefix="interests")


def references_of(cfg: PipelineConfig, out: Path) -> str:
    """The dataset's own explanation texts where it has them (XRec), else the teacher pass's file."""
    given = cfg.align.get("references")
    if given:
        return str(given)
    if cfg.data.source == "xrec":
        return "xrec"
    variant = (cfg.align.get("model") or {}).get("variant", "evidence")
    return "none" if variant in UNTRAINED else str(folder(out, "teacher") / "references.jsonl")


def align_config_of(cfg: PipelineConfig, out: Path):
    from llmrec.alignment.config import AlignRunConfig

    values = copy.deepcopy(cfg.align)
    values["references"] = references_of(cfg, out)
    model = values.setdefault("model", {})
    model["tokenizer_run"] = str(folder(out, "tokenizer"))
    model.setdefault("evidence_interests", str(folder(out, "interests")))
    model.setdefault("evidence_ranker", str(folder(out, serving_backbone(cfg))))
    values.setdefault("train", {})["out_dir"] = str(folder(out, "align"))
    values.setdefault("eval", {})["backend"] = cfg.engines.llm
    return from_dict(AlignRunConfig, values, prefix="align")


# -- runners --------------------------------------------------------------------------------------
def run_backbone(cfg: PipelineConfig, out: Path, *, signals: bool = False) -> dict:
    rc = backbone_config_of(cfg, out, signals=signals)
    if cfg.engines.train == "torchrun":
        return _torchrun(cfg, rc)
    from llmrec.train.run import run

    result = run(rc)
    return _backbone_summary(result)


def _backbone_summary(result: dict) -> dict:
    keys = ("backbone", "plugins", "best_epoch", "epochs", "stopped_by", "train_seconds", "test", "semantic",
            "protocol", "derived", "users", "items")
    return {k: result.get(k) for k in keys}


def _torchrun(cfg: PipelineConfig, rc: RunConfig) -> dict:
    """``llmrec train`` under torchrun (data-parallel); the run folder holds what a local run writes."""
    import yaml

    from llmrec.data.prepare import ensure_cached

    ensure_cached(rc.data)  # into the cache once, here: the ranks then read it instead of each preprocessing
    outdir = Path(rc.train.out_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    spec = outdir / "pipeline-train.yaml"
    spec.write_text(yaml.safe_dump({"kind": "train", **to_dict(rc)}, sort_keys=False))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={cfg.engines.nproc}",
           "--standalone", "-m", "llmrec", "train", "-c", str(spec),
           "train.progress=false"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        log = outdir / "torchrun.log"
        log.write_text(f"$ {' '.join(cmd)}\n\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        raise ConfigError(f"torchrun training failed (exit {proc.returncode}): {worker_error(proc.stderr)} "
                          f"(whole output: {log})")
    return _backbone_summary(json.loads((outdir / "results.json").read_text()))


def worker_error(stderr: str) -> str:
    """The last error a worker printed (llmrec's ``error: ...`` line or a traceback's exception
    line; torchrun's own summary follows them and names no cause), else the last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"(\[rank\d+\]:\s*)?(error: |[\w.]*(Error|Exception|Interrupt)\b)", ln)
              and not ln.startswith("torch.distributed.elastic")]
    return (raised or lines or ["(no output)"])[-1]


def run_tokenizer(cfg: PipelineConfig, out: Path) -> dict:
    from llmrec.tokenizer.train import run

    r = run(tokenizer_config_of(cfg, out))
    return {k: r.get(k) for k in ("valid", "test", "epochs", "best_epoch", "train_seconds", "text_coverage")
            if k in r}


def run_interests(cfg: PipelineConfig, out: Path) -> dict:
    from llmrec.interests.job import run_job

    stats = run_job(interests_config_of(cfg, out))
    if not stats.get("complete"):
        raise ConfigError(f"the ESIM job in {folder(out, 'interests')} did not finish; rerun the pipeline")
    return stats


def run_teacher_step(cfg: PipelineConfig, out: Path) -> dict:
    from llmrec.alignment.teacher import run_teacher
    from llmrec.data.prepare import prepare

    ac = align_config_of(cfg, out)
    return run_teacher(ac, backend=cfg.engines.llm, data=prepare(cfg.data), limit=cfg.teacher_limit)


def run_align(cfg: PipelineConfig, out: Path) -> dict:
    from llmrec.alignment.train import fit, setup

    s = setup(align_config_of(cfg, out), backend_kind=cfg.engines.llm)
    try:
        return fit(s)
    finally:
        close = getattr(s.backend, "close", None)
        if close is not None:
            close()


def steps(cfg: PipelineConfig) -> list[Step]:
    """The chain for this config, in order."""
    out: list[Step] = [
        Step("backbone", (), lambda c, o: backbone_config_of(c, o), run_backbone),
        Step("tokenizer", (), tokenizer_config_of, run_tokenizer),
        Step("interests", (), interests_config_of, run_interests),
    ]
    if cfg.signals.enabled:
        out.append(Step("backbone_signals", ("interests",), lambda c, o: backbone_config_of(c, o, signals=True),
                        lambda c, o: run_backbone(c, o, signals=True)))
    refs = references_of(cfg, Path(cfg.out_dir))
    align_deps = ["tokenizer", "interests", serving_backbone(cfg)]
    if refs == str(folder(Path(cfg.out_dir), "teacher") / "references.jsonl"):
        out.append(Step("teacher", (), _teacher_key, run_teacher_step))
        align_deps.append("teacher")
    out.append(Step("align", tuple(align_deps), align_config_of, run_align))
    out.append(Step("explain", ("align", serving_backbone(cfg)), _explain_key, explain_recommendations))
    return out


def _teacher_key(cfg: PipelineConfig, out: Path) -> dict:
    ac = align_config_of(cfg, out)
    return {"data": to_dict(cfg.data), "teacher": to_dict(ac.teacher), "limit": cfg.teacher_limit,
            "backend": cfg.engines.llm}


def _explain_key(cfg: PipelineConfig, out: Path) -> dict:
    return {"explain": to_dict(cfg.explain), "backend": cfg.engines.llm}

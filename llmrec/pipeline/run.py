"""Run the pipeline: every step keyed, skipped when its key is unchanged, resumed after a crash.

A step's key is the SHA-256 of its resolved config (progress and resume switches left out), its
upstream steps' keys and the llmrec version. The step's folder holds ``step.json``: its key and
status (running / done). On a new run a step is
- a cache hit when ``step.json`` says done with the same key: nothing runs;
- resumed when it says running with the same key: the stage's own checkpoints and job files
  continue where the crash left them;
- restarted from an empty folder when the key differs (config, an upstream step or llmrec changed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from llmrec import __version__
from llmrec.atomic import write_text
from llmrec.config import apply_overrides, from_dict, read_config_file
from llmrec.pipeline.config import PipelineConfig, folder
from llmrec.pipeline.steps import align_config_of, backbone_config_of, interests_config_of, steps, tokenizer_config_of

log = logging.getLogger("llmrec.pipeline")
FREE = {"progress", "resume", "checkpoint_every"}  # switches that do not change what a step computes
MARKER = "step.json"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items()) if k not in FREE}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def step_key(config: Any, upstream: list[str]) -> str:
    blob = json.dumps({"config": _plain(config), "upstream": upstream, "llmrec": __version__}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None


def plan(cfg: PipelineConfig) -> list[dict[str, str]]:
    """Each step's key and what a run would do with it (hit / resume / run), without running."""
    out, keys, rows = Path(cfg.out_dir), {}, []
    for step in steps(cfg):
        key = keys[step.name] = step_key(step.config(cfg, out), [keys[d] for d in step.deps])
        marker = read_marker(folder(out, step.name)) or {}
        state = ("cache hit" if marker.get("status") == "done" else "resume") if marker.get("key") == key else "run"
        rows.append({"step": step.name, "key": key, "state": state})
    return rows


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run every step (skipping cache hits), then write the report. Returns the report's JSON, with
    ``steps``: name -> {key, cache: hit|resumed|ran, seconds, summary}."""
    from llmrec.pipeline.report import write_report

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chain = steps(cfg)
    keys: dict[str, str] = {}
    status: dict[str, dict[str, Any]] = {}
    t_start = time.perf_counter()
    done_seconds: list[float] = []
    for n, step in enumerate(chain, 1):
        where = folder(out, step.name)
        key = step_key(step.config(cfg, out), [keys[d] for d in step.deps])
        keys[step.name] = key
        marker = read_marker(where)
        head = f"[{n}/{len(chain)}] {step.name}"
        if marker and marker.get("key") == key and marker.get("status") == "done":
            log.info("%s: cache hit (key %s)", head, key)
            status[step.name] = {"key": key, "cache": "hit", "seconds": marker.get("seconds", 0.0),
                                 "summary": marker.get("summary", {})}
            continue
        mode = "resumed" if marker and marker.get("key") == key else "ran"
        if marker and marker.get("key") != key and where.exists():
            log.info("%s: inputs changed (key %s -> %s); starting the step afresh", head, marker.get("key"), key)
            shutil.rmtree(where)
        elif marker is None and where.exists() and any(where.iterdir()):
            shutil.rmtree(where)  # files without a marker were not written by this step's key
        where.mkdir(parents=True, exist_ok=True)
        write_text(where / MARKER, json.dumps({"key": key, "status": "running", "step": step.name}))
        eta = _eta(done_seconds, len(chain) - n + 1)
        log.info("%s: %s (key %s)%s", head, "resuming" if mode == "resumed" else "running", key, eta)
        t0 = time.perf_counter()
        summary = step.run(cfg, out)
        seconds = round(time.perf_counter() - t0, 2)
        done_seconds.append(seconds)
        write_text(where / MARKER, json.dumps({"key": key, "status": "done", "step": step.name, "seconds": seconds,
                                               "summary": summary}, default=str, indent=1))
        status[step.name] = {"key": key, "cache": mode, "seconds": seconds, "summary": summary}
        log.info("%s: done in %.1f s", head, seconds)
    report = write_report(cfg, out, status)
    report["seconds"] = round(time.perf_counter() - t_start, 2)
    return report


def _eta(done: list[float], left: int) -> str:
    """A rough ETA: the mean of the steps that ran in this invocation times the steps left."""
    if not done:
        return ""
    return f"; about {sum(done) / len(done) * left / 60:.1f} min left at this session's pace"


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Read a pipeline YAML (``kind: pipeline``), apply dotted overrides, and resolve every step's own
    config once, so a typo in any stage section fails before a step runs (naming the dotted key)."""
    from llmrec.backbones.registry import backbone_config

    values = read_config_file(path, "pipeline")
    apply_overrides(values, overrides or [])
    if isinstance(values.get("backbone"), dict):
        values["backbone"].setdefault("name", "sasrec")
    cfg = from_dict(PipelineConfig, values)
    backbone_config(cfg.backbone)
    for build in (backbone_config_of, tokenizer_config_of, interests_config_of, align_config_of):
        build(cfg, Path(cfg.out_dir))
    return cfg
